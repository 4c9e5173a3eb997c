"""GATConv computed with CSR sparse products instead of per-edge messages."""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import GATConv
from torch_geometric.utils import softmax

from almea_pyg.nn.conv.csr_spmm import CSRGraph, attention_spmm, build_csr_graph

CSR_CACHE_SIZE = 4

_HOOKS = (
    "_propagate_forward_pre_hooks",
    "_propagate_forward_hooks",
    "_message_forward_pre_hooks",
    "_message_forward_hooks",
    "_aggregate_forward_pre_hooks",
    "_aggregate_forward_hooks",
    "_message_and_aggregate_forward_pre_hooks",
    "_message_and_aggregate_forward_hooks",
    "_edge_update_forward_pre_hooks",
    "_edge_update_forward_hooks",
)


class CSRGATConv(GATConv):
    r"""A drop-in :class:`~torch_geometric.nn.conv.GATConv` for large full graphs.

    Same constructor, parameters and ``state_dict`` as ``GATConv``, and the same
    result (Velickovic et al., 2018):
    :math:`x'_i = \sum_{j \in N(i)} \alpha_{ij} \Theta x_j` with
    :math:`\alpha_{ij} = \mathrm{softmax}_j(\mathrm{LeakyReLU}(a_s^\top \Theta x_j
    + a_t^\top \Theta x_i))`. The attention logits are kept per edge and head
    (:math:`E \times H`); the aggregation is one CSR sparse-dense product per head
    with a custom backward (:func:`~almea_pyg.nn.conv.csr_spmm.attention_spmm`), so
    no :math:`E \times d` message tensor is ever built. The destination-sorted edge
    structure is cached per ``edge_index`` (the graph is fixed across epochs)
    while that tensor lives.

    The fast path covers a graph given as a ``[2, E]`` tensor, homogeneous
    (``x`` a tensor) or bipartite (``x`` a pair of tensors, sources and
    destinations, as ``GATConv`` takes it), with no ``edge_attr``, ``size``
    absent or matching ``x``, float32/float64 features and
    ``return_attention_weights`` unset or ``False``; any other call (and a module
    with explain mode or message-passing hooks) runs ``GATConv.forward``. Attention
    dropout draws its mask in ``GATConv``'s edge order, so both layers give the same
    result under the same random seed.

    Args:
        *args, **kwargs: Exactly those of :class:`~torch_geometric.nn.conv.GATConv`.

    Shapes:
        - **input:** node features :math:`(N, F_{in})` or
          :math:`((N, F_{in}), (N_{dst}, F_{in}))`, edge indices :math:`(2, E)`
        - **output:** :math:`(N_{dst}, H \cdot C)` with ``concat=True``, else
          :math:`(N_{dst}, C)` (:math:`N_{dst} = N` for a tensor ``x``)
    """

    _csr_cache: (
        list[tuple[weakref.ref[Tensor], int, tuple[int, int | None, bool], CSRGraph]]
        | None
    ) = None

    def __getstate__(self) -> dict[str, Any]:
        """The module without its CSR cache (weak references do not pickle)."""
        state = super().__getstate__()
        state.pop("_csr_cache", None)
        return state

    def forward(
        self,
        x: Any,
        edge_index: Any,
        edge_attr: Tensor | None = None,
        size: Any = None,
        return_attention_weights: bool | None = None,
    ) -> Any:
        if not self.supports(x, edge_index, edge_attr, size, return_attention_weights):
            return super().forward(
                x, edge_index, edge_attr, size, return_attention_weights
            )
        H, C = self.heads, self.out_channels
        x_src, x_dst = x if isinstance(x, tuple) else (x, None)
        graph = self.csr_graph(
            edge_index, x_src.size(0), None if x_dst is None else x_dst.size(0)
        )

        lin_src, lin_dst = (
            (self.lin, self.lin)
            if self.lin is not None
            else (self.lin_src, self.lin_dst)
        )
        h_src = lin_src(x_src).view(-1, H, C)
        if x_dst is None:  # one node set: sources and destinations
            x_dst = x_src
        if lin_dst is lin_src and _is_prefix(x_dst, x_src):
            # the first sources' transform, reused (the whole for one node set)
            h_dst = h_src if x_dst is x_src else h_src[: x_dst.size(0)]
        else:
            h_dst = lin_dst(x_dst).view(-1, H, C)
        a_src = (h_src * self.att_src).sum(dim=-1)
        a_dst = (h_dst * self.att_dst).sum(dim=-1)

        logits = a_src.index_select(0, graph.col) + a_dst.index_select(0, graph.row)
        logits = F.leaky_relu(logits, self.negative_slope)
        alpha = softmax(logits, graph.row, num_nodes=graph.num_dst)
        if self.training and self.dropout > 0:
            alpha = alpha * self._dropout_mask(alpha, graph)

        out = attention_spmm(alpha, h_src, graph)
        out = out.reshape(-1, H * C) if self.concat else out.mean(dim=1)
        if self.res is not None:
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        return out

    def supports(
        self,
        x: Any,
        edge_index: Any,
        edge_attr: Tensor | None = None,
        size: Any = None,
        return_attention_weights: bool | None = None,
    ) -> bool:
        """Whether :meth:`forward` takes the CSR path for these arguments."""
        parts = x if isinstance(x, tuple) and len(x) == 2 else (x,)
        for part in parts:
            if not (isinstance(part, Tensor) and part.dim() == 2):
                return False
            if part.dtype not in (torch.float32, torch.float64):
                return False
        if not isinstance(edge_index, Tensor) or edge_index.layout != torch.strided:
            return False
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            return False
        if edge_attr is not None or return_attention_weights:
            return False
        if size is not None and tuple(size) != (parts[0].size(0), parts[-1].size(0)):
            return False
        if self.explain:
            return False
        return not any(getattr(self, name) for name in _HOOKS)

    def csr_graph(
        self, edge_index: Tensor, num_nodes: int, num_dst: int | None = None
    ) -> CSRGraph:
        """The CSR structure of ``edge_index`` (``num_dst`` destinations, for a
        bipartite graph), cached for the last few graphs seen.

        An entry is reused when the same tensor (unmodified) or an equal one is
        passed again with the same numbers of nodes and self-loop setting; several
        entries are kept so that one layer can alternate between graphs (e.g. the
        two KGs of an alignment pair). An entry goes with its ``edge_index``
        tensor: a mini-batch step's sampled subgraph is not seen again, and its
        structure is not kept once the step has freed it.
        """
        key = (num_nodes, num_dst, self.add_self_loops)
        entries = [entry for entry in self._csr_cache or [] if entry[0]() is not None]
        for i, (ref, version, entry_key, graph) in enumerate(entries):
            tensor = ref()  # alive: dead entries were dropped just above
            if entry_key != key or tensor._version != version:
                continue  # another graph, or modified in place since
            if tensor is edge_index or (
                tensor.shape == edge_index.shape
                and tensor.device == edge_index.device
                and torch.equal(tensor, edge_index)
            ):
                self._csr_cache = [entries[i], *entries[:i], *entries[i + 1 :]]
                return graph
        graph = build_csr_graph(
            edge_index, num_nodes, add_self_loops=self.add_self_loops, num_dst=num_dst
        )
        entry = (weakref.ref(edge_index), edge_index._version, key, graph)
        self._csr_cache = [entry, *entries][:CSR_CACHE_SIZE]
        return graph

    def _dropout_mask(self, alpha: Tensor, graph: CSRGraph) -> Tensor:
        # Drawn in GATConv's edge order, then permuted to the CSR order.
        mask = F.dropout(torch.ones_like(alpha), p=self.dropout, training=True)
        return mask[graph.perm]


def _is_prefix(part: Tensor, whole: Tensor) -> bool:
    """Whether ``part`` is ``whole[:n]``: the same tensor, or a view of the
    same base starting at the same element with the same strides (so that it
    carries the same values and the same autograd history)."""
    if part is whole:
        return True
    base = whole if whole._base is None else whole._base
    return (
        part._base is base
        and part.data_ptr() == whole.data_ptr()
        and part.stride() == whole.stride()
        and part.size(0) <= whole.size(0)
        and part.shape[1:] == whole.shape[1:]
    )
