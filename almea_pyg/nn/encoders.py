"""Modality encoders: the structural GAT encoder and feature projections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from almea_pyg.nn.conv import CSRGATConv


class GraphValues(NamedTuple):
    r"""Forward values for the GAT layers of a sampled subgraph (mini-batch
    training with whole-graph values): its forward pass takes them, its
    gradients stay the sample's.

    Only the hidden layers' values are kept for the whole graph: the seeds'
    output reads the last layer at the seeds alone, so its values are computed
    there, step by step (as GNNAutoScale keeps histories of the hidden layers
    only). At a million entities per side that is an :math:`N \times d` tensor
    (2 GiB) fewer.
    """

    #: ``L - 1`` tensors :math:`(N, d)`: the hidden layers' outputs on the whole
    #: graph, rows by entity id (:meth:`StructuralEncoder.hidden_values`)
    hidden: Sequence[Tensor]
    #: :math:`(S, d)`: the last layer's output at the subgraph's first ``S`` rows,
    #: its seeds (:meth:`StructuralEncoder.output_values`)
    output: Tensor


class _ForwardValue(torch.autograd.Function):
    """``value`` in the forward pass, ``x``'s gradient in the backward pass: what
    ``value + (x - x.detach())`` computes, without its two temporaries of ``x``'s
    size (0.8 GiB each at a million entities per side, fan-outs `[25, -1]`)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, value: Tensor) -> Tensor:
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class StructuralEncoder(nn.Module):
    r"""Graph modality ``g``: a learnable entity embedding refined by GAT layers.

    The embedding table covers every entity of both KGs; the GAT layers run over the
    union of their relation edges (disjoint graphs), so their weights are shared
    across the two KGs, as in MCLEA and ALMEA (Section 2 of the paper).

    Args:
        num_nodes (int): Number of entities (both KGs together).
        dim (int): Embedding size :math:`d`. (default: ``300``)
        num_layers (int): Number of GAT layers. (default: ``2``)
        heads (int): Attention heads per layer, averaged. (default: ``1``)
        dropout (float): Dropout on the input embedding and between layers.
            (default: ``0.0``)
        conv (type): The GAT layer class, :class:`~torch_geometric.nn.GATConv` or a
            drop-in replacement with the same constructor. (default:
            :class:`~almea_pyg.nn.conv.CSRGATConv`, the same layer without
            :math:`E \times d` messages)
        sparse (bool): Give the embedding table's gradient as sparse rows (the
            rows a mini-batch read), for
            :class:`~almea_pyg.train.optim.RowSparseAdam`. (default: ``False``)

    Shapes:
        - **input:** edge index :math:`(2, |\mathcal{E}|)`, optionally the
          entities of a subgraph's rows :math:`(n,)`
        - **output:** entity embeddings :math:`(N, d)` (or :math:`(n, d)`)
    """

    def __init__(
        self,
        num_nodes: int,
        dim: int = 300,
        *,
        num_layers: int = 2,
        heads: int = 1,
        dropout: float = 0.0,
        conv: type[GATConv] = CSRGATConv,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.dim = dim
        self.num_layers = num_layers
        self.heads = heads
        self.dropout = dropout
        self.embedding = nn.Embedding(num_nodes, dim, sparse=sparse)
        self.convs = nn.ModuleList(
            conv(dim, dim, heads=heads, concat=False) for _ in range(num_layers)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_normal_(self.embedding.weight)
        for conv in self.convs:
            conv.reset_parameters()

    def forward(
        self,
        edge_index: Tensor,
        node_index: Tensor | None = None,
        values: GraphValues | None = None,
        *,
        num_sampled_nodes_per_hop: Sequence[int] | None = None,
        num_sampled_edges_per_hop: Sequence[int] | None = None,
    ) -> Tensor:
        r"""The entities' embeddings after the last GAT layer.

        Args:
            edge_index (torch.Tensor): The whole graph, or a subgraph whose row
                ``r`` is entity ``node_index[r]`` (mini-batch training).
            node_index (torch.Tensor, optional): The entities of a subgraph's
                rows (default: ``edge_index`` spans every entity).
            values (GraphValues, optional): With ``node_index``, the whole
                graph's forward values, taken without gradients: each hidden
                layer's output on the subgraph takes ``values.hidden`` and the
                last layer's, at the first rows (the seeds), ``values.output``,
                each keeping its own gradient, so the seeds' output is the
                whole graph's and the backward pass the sample's (VR-GCN's
                control variate, Chen et al., 2018, with its history computed
                at the current parameters). The last layer's other rows keep
                the subgraph's values.
            num_sampled_nodes_per_hop (Sequence[int], optional): With a sampled
                subgraph in hop order (:class:`~almea_pyg.train.sampling.
                SampledSubgraph`), its rows per hop, the seeds first; with
                ``num_sampled_edges_per_hop``, layer :math:`l` runs only on the
                rows and edges of the first :math:`L - l` hops, the part the
                seeds' output reads (PyG's ``trim_to_layer``), and outputs only
                the rows the next layer reads, those of the first
                :math:`L - l - 1` hops (a bipartite layer): the output is the
                seeds' rows, the same as untrimmed (with dropout, from other
                masks).
            num_sampled_edges_per_hop (Sequence[int], optional): Its edges per
                hop, from hop 1.

        Shapes:
            - **input:** ``edge_index`` :math:`(2, E)` or :math:`(2, e)`,
              ``node_index`` :math:`(n,)`, ``values``: ``hidden``
              :math:`(L - 1) \times (N, d)`, ``output`` :math:`(S, d)`
            - **output:** :math:`(N, d)`, or :math:`(n, d)` with ``node_index``
              (trimmed: the seeds' rows only)
        """
        if values is not None:
            if node_index is None:
                raise ValueError("values replace a subgraph's: give node_index")
            if len(values.hidden) != self.num_layers - 1:
                raise ValueError(
                    f"values: one tensor per hidden layer ({self.num_layers - 1}), "
                    f"got {len(values.hidden)}"
                )
            if values.output.size(0) > node_index.numel():
                raise ValueError(
                    f"values: output rows ({values.output.size(0)}) exceed the "
                    f"subgraph's ({node_index.numel()})"
                )
        trim = None
        if (
            num_sampled_nodes_per_hop is not None
            or num_sampled_edges_per_hop is not None
        ):
            trim = self._trim_sizes(
                node_index,
                edge_index,
                num_sampled_nodes_per_hop,
                num_sampled_edges_per_hop,
            )
        x = self.embedding.weight if node_index is None else self.embedding(node_index)
        return self._propagate(x, edge_index, node_index, values, trim)

    def _trim_sizes(
        self,
        node_index: Tensor | None,
        edge_index: Tensor,
        nodes: Sequence[int] | None,
        edges: Sequence[int] | None,
    ) -> list[tuple[int, int, int]]:
        """The rows, output rows and edges of each layer, from a sample's per-hop
        counts: layer ``l`` reads the first ``L - l + 1`` hops' rows (all of them
        at the first layer) over the first ``L - l`` hops' edges, and outputs the
        first ``L - l`` hops' rows, the destinations of those edges."""
        L = self.num_layers
        if node_index is None or nodes is None or edges is None:
            raise ValueError(
                "trimming needs node_index and both per-hop counts of the sample"
            )
        if len(nodes) != L + 1 or len(edges) != L:
            raise ValueError(
                f"a {L}-layer GAT trims a {L}-hop sample: {L + 1} node counts and "
                f"{L} edge counts, got {len(nodes)} and {len(edges)}"
            )
        if sum(nodes) != node_index.numel() or sum(edges) != edge_index.size(1):
            raise ValueError(
                f"per-hop counts ({sum(nodes)} rows, {sum(edges)} edges) do not "
                f"add up to the subgraph's ({node_index.numel()}, "
                f"{edge_index.size(1)})"
            )
        return [
            (sum(nodes[: L - i + 1]), sum(nodes[: L - i]), sum(edges[: L - i]))
            for i in range(L)
        ]

    @torch.no_grad()
    def hidden_values(self, edge_index: Tensor) -> list[Tensor]:
        """The hidden layers' outputs on the whole graph ``edge_index``, without
        gradients: :attr:`GraphValues.hidden` (``L - 1`` tensors ``(N, d)``)."""
        x = F.dropout(self.embedding.weight, self.dropout, self.training)
        outputs = []
        for i in range(self.num_layers - 1):
            x = self._layer(i, x, edge_index)
            outputs.append(x)
        return outputs

    @torch.no_grad()
    def output_values(
        self,
        hidden: Sequence[Tensor],
        edge_index: Tensor,
        node_index: Tensor,
        num_seeds: int,
    ) -> Tensor:
        r"""The last layer's output at ``num_seeds`` seeds, without gradients:
        :attr:`GraphValues.output`. It runs from a subgraph's rows to its first
        rows, the seeds, over every incoming edge of theirs (e.g.
        :class:`~almea_pyg.train.sampling.NeighborSampling` with fan-out
        ``[-1]``), the other rows taking the last hidden layer's values
        ``hidden[-1]`` (the input embedding for a one-layer GAT).

        Shapes:
            ``hidden`` :math:`(L - 1) \times (N, d)`, ``edge_index``
            :math:`(2, e)`, ``node_index`` :math:`(n,)` -> :math:`(S, d)`
        """
        if hidden:
            x = hidden[-1][node_index]
        else:
            x = F.dropout(self.embedding(node_index), self.dropout, self.training)
        return self._layer(self.num_layers - 1, (x, x[:num_seeds]), edge_index)

    def _propagate(
        self,
        x: Tensor,
        edge_index: Tensor,
        node_index: Tensor | None = None,
        values: GraphValues | None = None,
        trim: Sequence[tuple[int, int, int]] | None = None,
    ) -> Tensor:
        """The last layer's output from the input ``x`` (dropout, then every
        layer); with ``values``, their values and this pass's gradients; with
        ``trim``, layer ``l`` on rows, output rows and edges ``trim[l]`` only."""
        x = F.dropout(x, self.dropout, self.training)
        for i in range(self.num_layers):
            if trim is None:
                x = self._layer(i, x, edge_index)
            else:
                rows, dst, edges = trim[i]
                x, edge_index = x[:rows], edge_index[:, :edges]
                x = self._layer(i, (x, x[:dst]), edge_index)
            if values is not None and i < self.num_layers - 1:
                x = _ForwardValue.apply(x, values.hidden[i][node_index[: x.size(0)]])
            elif values is not None:
                seeds = values.output.size(0)
                x = torch.cat(
                    [_ForwardValue.apply(x[:seeds], values.output), x[seeds:]]
                )
        return x

    def _layer(
        self, i: int, x: Tensor | tuple[Tensor, Tensor], edge_index: Tensor
    ) -> Tensor:
        """GAT layer ``i`` (on the rows ``x``, or from sources to destinations
        ``x = (x_src, x_dst)``), with the activation and dropout of a hidden
        layer."""
        x = self.convs[i](x, edge_index)
        if i < self.num_layers - 1:
            x = F.dropout(F.elu(x), self.dropout, self.training)
        return x

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.num_nodes}, dim={self.dim}, "
            f"layers={self.num_layers}, heads={self.heads}, "
            f"conv={self.convs[0].__class__.__name__ if self.convs else None})"
        )


class FeatureEncoder(nn.Module):
    r"""A feature modality (relations, attributes, images, text, ...): one
    :class:`~torch.nn.Linear` from the feature vector to :math:`d`.

    When the two KGs describe the modality in different vocabularies (bags of their
    own relations or attributes), give ``in_channels`` as a ``(source, target)``
    pair: each side then has its own projection into the shared space. A single
    ``int`` shares one projection (e.g. image features from the same CNN).

    Args:
        in_channels (int or tuple): Feature size, or ``(source, target)`` sizes.
        out_channels (int): Embedding size :math:`d`. (default: ``300``)

    Shapes:
        - **input:** features :math:`(N, F)`, side ``0`` (source) or ``1`` (target)
        - **output:** :math:`(N, d)`
    """

    def __init__(
        self, in_channels: int | tuple[int, int], out_channels: int = 300
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        sizes = (in_channels,) if isinstance(in_channels, int) else tuple(in_channels)
        self.lins = nn.ModuleList(nn.Linear(size, out_channels) for size in sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.lins:
            lin.reset_parameters()

    def forward(self, x: Tensor, side: int = 0) -> Tensor:
        return self.lins[side if len(self.lins) > 1 else 0](x)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels})"
