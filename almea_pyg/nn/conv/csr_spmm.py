"""Attention-weighted neighbourhood sums as CSR sparse-dense products.

A graph attention layer aggregates ``out[i] = sum_{j -> i} alpha_ji * h[j]``. The
message-passing form materialises the ``E x d`` tensor ``alpha_ji * h[j]``; here the
sum is one CSR sparse-dense product per head, and the backward pass needs no
``E x d`` tensor either: ``grad_h = A^T @ grad_out`` (a second CSR product over the
transposed structure) and ``grad_alpha_ji = <grad_out[i], h[j]>`` (a sampled
dense-dense product, SDDMM, on the sparsity pattern of ``A``).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.utils import add_self_loops as add_loops
from torch_geometric.utils import remove_self_loops


class CSRGraph(NamedTuple):
    r"""A directed graph sorted by destination (CSR) and by source (its transpose).

    Edge ``e`` of the CSR order goes from source ``col[e]`` to destination
    ``row[e]``. ``perm`` maps it back to the edge order
    :class:`~torch_geometric.nn.conv.GATConv` uses (after its self-loop handling),
    so per-edge random draws can be made in that order. Sources and destinations
    are the same :math:`N` nodes, or (bipartite) :math:`N` sources and
    :math:`N_{dst}` destinations.

    Shapes:
        - **ptr**: :math:`(N_{dst} + 1,)`, **ptr_t**: :math:`(N + 1,)`
        - **row**, **col**, **perm**, **col_t**, **perm_t**: :math:`(E,)`
    """

    num_nodes: int  #: sources :math:`N`
    ptr: Tensor
    row: Tensor
    col: Tensor
    perm: Tensor
    ptr_t: Tensor
    col_t: Tensor
    perm_t: Tensor
    num_dst: int  #: destinations :math:`N_{dst}` (:math:`N` unless bipartite)

    @property
    def num_edges(self) -> int:
        return self.row.numel()


def index_to_ptr(index: Tensor, num_nodes: int) -> Tensor:
    """Row pointers ``(N + 1,)`` of node ids ``index`` (in any order): node ``i``
    has ``ptr[i + 1] - ptr[i]`` entries."""
    ptr = index.new_zeros(num_nodes + 1)
    torch.cumsum(torch.bincount(index, minlength=num_nodes), dim=0, out=ptr[1:])
    return ptr


def build_csr_graph(
    edge_index: Tensor,
    num_nodes: int,
    *,
    add_self_loops: bool = True,
    num_dst: int | None = None,
) -> CSRGraph:
    r"""Sorts ``edge_index`` by destination, as ``GATConv`` sees it.

    With ``add_self_loops=True`` existing self-loops are removed and one loop per
    node is appended (per node that is both a source and a destination, the
    first :math:`\min(N, N_{dst})`, in a bipartite graph), exactly as
    :class:`~torch_geometric.nn.conv.GATConv` does; duplicate edges are kept
    (each one is a separate attention term).

    Args:
        edge_index (Tensor): Edges ``(source, destination)``.
        num_nodes (int): Number of (source) nodes :math:`N`.
        add_self_loops (bool, optional): Replace self-loops by one loop per node.
            (default: :obj:`True`)
        num_dst (int, optional): Number of destinations :math:`N_{dst}`, for a
            bipartite graph (default: :math:`N`).

    Shapes:
        - **edge_index**: :math:`(2, E_{in})`
        - **output**: a :class:`CSRGraph` with :math:`E` edges
    """
    num_dst = num_nodes if num_dst is None else num_dst
    if add_self_loops:
        edge_index, _ = remove_self_loops(edge_index)
        edge_index, _ = add_loops(edge_index, num_nodes=min(num_nodes, num_dst))
    src, dst = edge_index[0], edge_index[1]
    # Rows sorted by (destination, source); a stable sort of that order by
    # source gives the transpose sorted by (source, destination).
    perm = torch.sort(dst * num_nodes + src, stable=True).indices
    row, col = dst[perm], src[perm]
    perm_t = torch.sort(col, stable=True).indices
    return CSRGraph(
        num_nodes=num_nodes,
        ptr=index_to_ptr(row, num_dst),
        row=row,
        col=col,
        perm=perm,
        ptr_t=index_to_ptr(col, num_nodes),
        col_t=row[perm_t],
        perm_t=perm_t,
        num_dst=num_dst,
    )


def _csr(
    ptr: Tensor, col: Tensor, values: Tensor, num_rows: int, num_cols: int
) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return torch.sparse_csr_tensor(
            ptr, col, values, (num_rows, num_cols), check_invariants=False
        )


def _spmm(ptr: Tensor, col: Tensor, values: Tensor, dense: Tensor) -> Tensor:
    """Per-head ``A_h @ dense_h`` for values ``(E, H)`` and dense ``(N, H, C)``;
    ``A`` has ``ptr.numel() - 1`` rows."""
    num_rows, num_cols = ptr.numel() - 1, dense.size(0)
    outs = [
        _csr(ptr, col, values[:, k], num_rows, num_cols) @ dense[:, k].contiguous()
        for k in range(dense.size(1))
    ]
    return outs[0].unsqueeze(1) if len(outs) == 1 else torch.stack(outs, dim=1)


def _sddmm(graph: CSRGraph, left: Tensor, right: Tensor) -> Tensor:
    """Per-head ``<left[row[e]], right[col[e]]>`` for every edge, ``(E, H)``."""
    num_rows, num_nodes, num_edges = left.size(0), right.size(0), graph.num_edges
    if num_edges == 0:
        return left.new_zeros(0, left.size(1))
    # sampled_addmm caps the number of stored entries at rows * cols, which a
    # tiny graph with duplicate edges can exceed: widen it with zero columns.
    num_cols = max(num_nodes, -(-num_edges // num_rows))
    if num_cols > num_nodes:
        right = torch.cat(
            [right, right.new_zeros(num_cols - num_nodes, *right.shape[1:])]
        )
    pattern = _csr(graph.ptr, graph.col, left.new_zeros(num_edges), num_rows, num_cols)
    outs = [
        torch.sparse.sampled_addmm(
            pattern, left[:, k].contiguous(), right[:, k].contiguous().t(), beta=0.0
        ).values()
        for k in range(left.size(1))
    ]
    return outs[0].unsqueeze(1) if len(outs) == 1 else torch.stack(outs, dim=1)


class _AttentionSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alpha: Tensor, h: Tensor, graph: CSRGraph) -> Tensor:
        ctx.graph = graph
        ctx.save_for_backward(alpha, h)
        return _spmm(graph.ptr, graph.col, alpha, h)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        alpha, h = ctx.saved_tensors
        graph: CSRGraph = ctx.graph
        grad_out = grad_out.contiguous()
        grad_alpha = grad_h = None
        if ctx.needs_input_grad[0]:
            grad_alpha = _sddmm(graph, grad_out, h)
        if ctx.needs_input_grad[1]:
            grad_h = _spmm(graph.ptr_t, graph.col_t, alpha[graph.perm_t], grad_out)
        return grad_alpha, grad_h, None


def attention_spmm(alpha: Tensor, h: Tensor, graph: CSRGraph) -> Tensor:
    r"""Computes ``out[i, k] = sum_e alpha[e, k] * h[col[e], k]`` over edges into ``i``.

    Differentiable w.r.t. ``alpha`` and ``h``; neither pass allocates an
    :math:`E \times C` tensor.

    Args:
        alpha (Tensor): Per-edge, per-head weights in the CSR order of ``graph``.
        h (Tensor): Per-node, per-head features.
        graph (CSRGraph): The graph from :func:`build_csr_graph`.

    Shapes:
        - **alpha**: :math:`(E, H)`
        - **h**: :math:`(N, H, C)`
        - **output**: :math:`(N_{dst}, H, C)`
    """
    return _AttentionSpMM.apply(alpha, h, graph)
