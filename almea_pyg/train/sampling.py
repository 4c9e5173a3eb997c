"""Uniform k-hop neighbour sampling of the union graph, for mini-batch training.

:class:`NeighborSampling` samples, around a batch's seed entities, the
neighbourhood that an :math:`L`-layer GAT reads: hop by hop, for every node
reached at the previous hop, up to ``fanouts[hop]`` of its incoming edges drawn
uniformly without replacement (PyG's ``NeighborLoader`` semantics: only the
sampled edges are kept, not the induced subgraph). It uses PyG's own
:class:`torch_geometric.sampler.NeighborSampler` where ``pyg-lib`` or
``torch-sparse`` is installed, and otherwise :func:`sample_neighbors`, a small
vectorised fallback with the same output contract.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch_geometric.typing
from torch import Tensor

from almea_pyg.nn.conv.csr_spmm import index_to_ptr

SamplerBackend = Literal["auto", "pyg", "torch"]


class SampledSubgraph(NamedTuple):
    """A sampled neighbourhood of seed nodes, in hop order: the rows of the seeds,
    then of the nodes first reached at hop 1, 2, ...; the edges drawn at hop 1
    (into the seeds), then at hop 2, ... The per-hop counts let an
    :math:`L`-layer GNN skip what its later layers cannot use (PyG's
    ``trim_to_layer``)."""

    node_index: Tensor  #: ``(n,)`` graph ids of the rows, the seeds first, distinct
    edge_index: Tensor  #: ``(2, e)`` sampled edges between rows of ``node_index``
    #: rows per hop, the seeds first (``len(fanouts) + 1`` counts); ``None``: unknown
    num_sampled_nodes: list[int] | None = None
    #: edges per hop, from hop 1 (``len(fanouts)`` counts); ``None``: unknown
    num_sampled_edges: list[int] | None = None


def pyg_sampling_available() -> bool:
    """Whether PyG's neighbour sampler can run (it needs pyg-lib or torch-sparse)."""
    return bool(
        torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE
    )


def to_csc(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """The incoming edges of every node: ``colptr`` ``(N + 1,)`` and the sources
    ``row`` ``(E,)`` sorted by destination, node ``i``'s in
    ``row[colptr[i]:colptr[i + 1]]`` (edges ``j -> i``, messages flowing to ``i``).
    """
    src, dst = edge_index
    return index_to_ptr(dst, num_nodes), src[torch.argsort(dst, stable=True)]


def sample_neighbors(
    colptr: Tensor,
    row: Tensor,
    seeds: Tensor,
    fanouts: Sequence[int],
    *,
    generator: torch.Generator | None = None,
) -> SampledSubgraph:
    """Uniform neighbour sampling without replacement in pure PyTorch.

    It exists because PyG's samplers need ``pyg-lib`` or ``torch-sparse``, which
    have no wheels for every platform and torch version (none for this project's
    CPU build); :class:`NeighborSampling` prefers them where installed. Each hop
    draws, for every node first reached at the previous hop (the seeds at the
    first), ``min(degree, k)`` of its incoming edges (all of them for ``k = -1``).
    A node with more than ``k`` draws ``k`` distinct offsets by Robert Floyd's
    algorithm, vectorised over the nodes (``k`` steps, memory ``O(nodes * k)``
    whatever the degrees); newly reached nodes get rows after those already
    sampled, found by sorting and binary search. No loop runs over nodes or
    edges, and all of it runs on the graph's device.

    Args:
        colptr (torch.Tensor): CSC pointers of the graph, :func:`to_csc`.
        row (torch.Tensor): Sources sorted by destination, :func:`to_csc`.
        seeds (torch.Tensor): Distinct seed nodes.
        fanouts (Sequence[int]): Edges drawn per node at each hop (``-1``: all).
        generator (torch.Generator, optional): Source of the draws.

    Shapes:
        - **input:** ``colptr`` :math:`(N + 1,)`, ``row`` :math:`(E,)`, ``seeds``
          :math:`(S,)`
        - **output:** :class:`SampledSubgraph`: ``node_index`` :math:`(n,)`
          starting with ``seeds``, ``edge_index`` :math:`(2, e)`
    """
    device = row.device
    nodes = seeds.to(device)
    frontier = torch.arange(nodes.numel(), device=device)  # rows to expand
    rows, cols = [], []
    num_nodes = [nodes.numel()]
    for k in fanouts:
        start = colptr[nodes[frontier]]
        degree = colptr[nodes[frontier] + 1] - start
        take = degree if k < 0 else degree.clamp(max=k)
        owner = torch.repeat_interleave(
            torch.arange(frontier.numel(), device=device), take
        )
        offset = (
            torch.arange(owner.numel(), device=device) - (take.cumsum(0) - take)[owner]
        )
        if k >= 0 and bool((degree > k).any()):
            drawn = _floyd(degree, k, generator)
            offset = torch.where(degree[owner] > k, drawn[owner, offset], offset)
        src = row[start[owner] + offset]
        # Rows: those of nodes sampled before, else new rows after them.
        known, order = torch.sort(nodes)
        pos = torch.searchsorted(known, src).clamp_(max=known.numel() - 1)
        seen = known[pos] == src
        new = torch.unique(src[~seen])
        local = torch.empty_like(src)
        local[seen] = order[pos[seen]]
        local[~seen] = nodes.numel() + torch.searchsorted(new, src[~seen])
        rows.append(local)
        cols.append(frontier[owner])
        frontier = torch.arange(
            nodes.numel(), nodes.numel() + new.numel(), device=device
        )
        nodes = torch.cat([nodes, new])
        num_nodes.append(new.numel())
    if not rows:
        return SampledSubgraph(
            nodes, torch.empty(2, 0, dtype=torch.long, device=device), num_nodes, []
        )
    return SampledSubgraph(
        nodes,
        torch.stack([torch.cat(rows), torch.cat(cols)]),
        num_nodes,
        [r.numel() for r in rows],
    )


def _counts(counts: Sequence[int] | Tensor | None) -> list[int] | None:
    """PyG's per-hop counts (a list or a tensor, or ``None``) as a list."""
    return None if counts is None else [int(c) for c in counts]


def _floyd(degree: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` distinct offsets in ``[0, degree)`` per node with ``degree >= k``,
    uniform over the ``k``-subsets (Floyd's algorithm: step ``i`` draws ``t`` in
    ``[0, degree - k + i]`` and takes ``degree - k + i`` instead when ``t`` is
    taken). Rows of nodes with ``degree < k`` hold junk.

    Shapes:
        ``degree`` :math:`(f,)` -> :math:`(f, k)`
    """
    out = degree.new_zeros(degree.numel(), k)
    gen_device = generator.device if generator is not None else degree.device
    for i in range(k):
        top = degree - k + i
        u = torch.rand(
            degree.numel(), generator=generator, dtype=torch.float64, device=gen_device
        )
        t = torch.minimum((u.to(degree.device) * (top + 1)).long(), top)
        taken = (out[:, :i] == t.unsqueeze(1)).any(dim=1)
        out[:, i] = torch.where(taken, top, t)
    return out


class NeighborSampling:
    r"""Samples the ``len(fanouts)``-hop neighbourhood of seed nodes in a graph.

    With PyG's sampler (``backend="pyg"``, the ``"auto"`` choice where
    ``pyg-lib`` or ``torch-sparse`` is installed) the draws come from that
    library's own random state; with :func:`sample_neighbors` (``"torch"``) from
    the ``generator`` given to each call. Both give the sampled node ids with the
    seeds first and the sampled edges relabelled to rows of those ids.

    Args:
        edge_index (torch.Tensor): The graph's edges, ``j -> i`` as
            ``[[j], [i]]``.
        num_nodes (int): Its node count.
        fanouts (Sequence[int]): Incoming edges drawn per node at each hop, one
            hop per message-passing layer (``-1``: all of them).
        backend (str): ``"auto"``, ``"pyg"`` or ``"torch"``. (default: ``"auto"``)

    Shapes:
        - **input:** ``edge_index`` :math:`(2, E)`; a call: distinct ``seeds``
          :math:`(S,)`
        - **output:** :class:`SampledSubgraph` on the seeds' device
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        fanouts: Sequence[int],
        *,
        backend: SamplerBackend = "auto",
    ) -> None:
        try:
            counts = [operator.index(k) for k in fanouts]
        except TypeError:
            counts = []
        if not counts or any(k < -1 for k in counts):
            raise ValueError(
                f"fanouts must be one count >= 0 (or -1: all) per hop, got {fanouts!r}"
            )
        fanouts = counts
        if backend not in ("auto", "pyg", "torch"):
            raise ValueError(f"backend must be auto, pyg or torch, got {backend!r}")
        if backend == "pyg" and not pyg_sampling_available():
            raise ImportError(
                "PyG's neighbour sampler needs pyg-lib or torch-sparse; neither is "
                "installed (use backend='torch')"
            )
        if backend == "auto":
            backend = "pyg" if pyg_sampling_available() else "torch"
        self.fanouts = fanouts
        self.backend = backend
        if backend == "pyg":
            from torch_geometric.data import Data
            from torch_geometric.sampler import NeighborSampler

            graph = Data(edge_index=edge_index.cpu(), num_nodes=num_nodes)
            self._pyg = NeighborSampler(graph, num_neighbors=fanouts)
        else:
            self.colptr, self.row = to_csc(edge_index, num_nodes)

    def __call__(
        self, seeds: Tensor, generator: torch.Generator | None = None
    ) -> SampledSubgraph:
        """The sampled neighbourhood of ``seeds`` (``generator``: the fallback's
        source of randomness; PyG's sampler ignores it)."""
        if seeds.numel() == 0 or torch.unique(seeds).numel() != seeds.numel():
            raise ValueError("seeds must be distinct nodes, at least one")
        if self.backend == "torch":
            out = sample_neighbors(
                self.colptr, self.row, seeds, self.fanouts, generator=generator
            )
            return out._replace(
                node_index=out.node_index.to(seeds.device),
                edge_index=out.edge_index.to(seeds.device),
            )
        from torch_geometric.sampler import NodeSamplerInput

        out = self._pyg.sample_from_nodes(NodeSamplerInput(None, seeds.cpu()))
        edge_index = torch.stack([out.row, out.col]).to(seeds.device)
        return SampledSubgraph(
            out.node.to(seeds.device),
            edge_index,
            _counts(out.num_sampled_nodes),
            _counts(out.num_sampled_edges),
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(fanouts={self.fanouts}, "
            f"backend={self.backend!r})"
        )
