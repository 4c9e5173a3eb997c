"""ALMEA: multimodal entity alignment with latent semantic learning and calibration."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv
from torch_geometric.typing import PairTensor

from almea_pyg.data.pair import MMKGPair
from almea_pyg.models.imputation import impute_modalities
from almea_pyg.models.inputs import PairInputs
from almea_pyg.models.loss import ALMEALoss
from almea_pyg.nn.conv import CSRGATConv
from almea_pyg.nn.encoders import FeatureEncoder, GraphValues, StructuralEncoder
from almea_pyg.nn.fusion import FusionMode, ModalityFusion
from almea_pyg.nn.imputer import LinearImputer
from almea_pyg.nn.losses import UncertaintyWeighting
from almea_pyg.nn.lsc import LatentSemanticCalibration
from almea_pyg.nn.lsl import LatentSemanticLearning

GRAPH = "graph"
#: Entities :meth:`ALMEA.embed` passes through the layers after the GAT at once.
EMBED_BATCH_SIZE = 65536
#: How :meth:`ALMEA.embed` imputes: LSL's decoders (the paper) or a ridge
#: regression on the other modalities (:class:`~almea_pyg.nn.LinearImputer`).
Imputer = Literal["lsl", "linear"]
IMPUTERS: tuple[str, ...] = get_args(Imputer)


class ALMEAOutput(NamedTuple):
    """What :meth:`ALMEA.forward` computes for the rows asked for: the source
    entities first, then the target entities."""

    h: dict[str, Tensor]  #: modality embeddings ``{m: (B_s + B_t, d)}``
    present: dict[str, Tensor]  #: presence masks ``{m: (B_s + B_t,)}``
    joint: Tensor  #: joint embeddings ``(B_s + B_t, D)``
    num_source: int  #: ``B_s``, the source rows


class ALMEA(nn.Module):
    r"""ALMEA (Section 3 of the paper) without its active-learning loop.

    Modality encoders (a GAT over the relation graph plus one projection per
    feature modality) feed a global weighted fusion into the joint embedding
    (:meth:`forward`). LSL (a masked VAE per modality) and LSC (tanh calibration
    and per-entity latent fusion) shape the embeddings during training through
    the objective (:meth:`loss`, :class:`~almea_pyg.models.ALMEALoss`): the
    MCLEA-style base objective, whose modality losses carry learned uncertainty
    weights (:attr:`modality_weighting`), plus

    .. math::
        \lambda_1 \mathcal{L}_{SCL} + \lambda_2 \mathcal{L}_{DML}
        + \lambda_3 \mathcal{L}_{URL} + \lambda_4 \mathcal{L}_{JAL}.

    The decoder input for a modality dropped by the masking is the calibrated
    fused latent of the entity's remaining modalities, so the decoders learn the
    imputation used at inference (``impute_missing``,
    :func:`~almea_pyg.models.impute_modalities`).

    Both KGs share one entity index space, as in PyG's batches of graphs: source
    entity ``i`` is ``i``, target entity ``j`` is ``N_s + j``
    (:class:`~almea_pyg.models.PairInputs` gathers a pair's tensors this way).

    Args:
        num_entities (tuple[int, int]): Entities of the source and target KG.
        in_channels (dict): Feature size per feature modality, an ``int`` (one
            projection shared by both KGs) or a ``(source, target)`` pair.
        dim (int): Embedding size :math:`d`. (default: ``300``)
        use_graph (bool): Use the structural GAT modality. (default: ``True``)
        num_gat_layers (int): GAT layers. (default: ``2``)
        heads (int): GAT attention heads (averaged). (default: ``1``)
        dropout (float): Dropout in the structural encoder. (default: ``0.0``)
        gat (type): GAT layer class. (default:
            :class:`~almea_pyg.nn.conv.CSRGATConv`)
        sparse (bool): The entity table's gradient as sparse rows: in
            mini-batch training (``Trainer(fanouts=...)``) a step then updates
            only the rows its subgraph read, the others' Adam steps applied
            when they are next read (:class:`~almea_pyg.train.optim.RowSparseAdam`:
            dense Adam's training, to float rounding). Pays when a step reads a
            small share of the table (measured: ``[10, 10]`` at a million
            entities per side).
            (default: ``False``)
        fusion (str): ``"weighted"`` or ``"concat"``. (default: ``"weighted"``)
        use_lsl (bool): Add LSL (and LSC on top); ``False`` gives the base model.
            (default: ``True``)
        use_lsc (bool): Calibrate latents with tanh (``False``: "w/o LSC").
            (default: ``True``)
        p_mask (float): LSL masking probability. (default: ``0.45``)
        lambda_scl, lambda_dml, lambda_url, lambda_jal (float): Loss weights;
            ``0`` switches a term off. (default: ``1.0`` each)
        temperature (float): InfoNCE temperature. (default: ``0.1``)
        ial_temperature (float): Inter-modal alignment temperature.
            (default: ``4.0``)
        latent_chunk_size (int, optional): Seed pairs per checkpointed chunk of
            the LSL/LSC losses. (default: ``512``)
        impute_missing (bool): Impute missing modalities in :meth:`embed`. Off by
            default: on FB15K-DB15K (20 %, 150 epochs) imputed embeddings
            scored MRR 50.57 against 50.92 without; every result file reports
            the other setting too. (default: ``False``)
        imputer (str): What imputes: ``"lsl"``, LSL's decoders (the paper; needs
            ``use_lsl``, else nothing is imputed), or ``"linear"``, a
            :class:`~almea_pyg.nn.LinearImputer` refitted on the model's
            embeddings of both KGs whenever :meth:`embed` imputes (works with
            the base model too). (default: ``"lsl"``)

    The loss settings go to :attr:`criterion`, an
    :class:`~almea_pyg.models.ALMEALoss`.
    """

    def __init__(
        self,
        num_entities: tuple[int, int],
        in_channels: dict[str, int | tuple[int, int]],
        *,
        dim: int = 300,
        use_graph: bool = True,
        num_gat_layers: int = 2,
        heads: int = 1,
        dropout: float = 0.0,
        gat: type[GATConv] = CSRGATConv,
        sparse: bool = False,
        fusion: FusionMode = "weighted",
        use_lsl: bool = True,
        use_lsc: bool = True,
        p_mask: float = 0.45,
        lambda_scl: float = 1.0,
        lambda_dml: float = 1.0,
        lambda_url: float = 1.0,
        lambda_jal: float = 1.0,
        temperature: float = 0.1,
        ial_temperature: float = 4.0,
        latent_chunk_size: int | None = 512,
        impute_missing: bool = False,
        imputer: Imputer = "lsl",
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        if imputer not in IMPUTERS:
            raise ValueError(f"imputer must be one of {IMPUTERS}, got {imputer!r}")
        self.num_entities = tuple(num_entities)
        self.in_channels = dict(in_channels)
        self.dim = dim
        self.use_graph = use_graph
        self.use_lsl = use_lsl
        self.use_lsc = use_lsc
        self.impute_missing = impute_missing
        self.imputer = imputer
        #: The training objective (parameter-free; see :meth:`loss`).
        self.criterion = ALMEALoss(
            lambda_scl=lambda_scl,
            lambda_dml=lambda_dml,
            lambda_url=lambda_url,
            lambda_jal=lambda_jal,
            temperature=temperature,
            ial_temperature=ial_temperature,
            latent_chunk_size=latent_chunk_size,
        )
        self.modalities = ([GRAPH] if use_graph else []) + sorted(self.in_channels)
        if not self.modalities:
            raise ValueError("ALMEA needs at least one modality")
        self.structure = (
            StructuralEncoder(
                sum(self.num_entities),
                dim,
                num_layers=num_gat_layers,
                heads=heads,
                dropout=dropout,
                conv=gat,
                sparse=sparse,
            )
            if use_graph
            else None
        )
        self.encoders = nn.ModuleDict(
            {m: FeatureEncoder(size, dim) for m, size in self.in_channels.items()}
        )
        self.fusion = ModalityFusion(self.modalities, mode=fusion)
        #: The learned uncertainty weights of the per-modality base losses.
        self.modality_weighting = UncertaintyWeighting(2 * len(self.modalities))
        self.lsl = (
            LatentSemanticLearning(self.modalities, dim, p_mask=p_mask)
            if use_lsl
            else None
        )
        self.lsc = (
            LatentSemanticCalibration(self.modalities, dim, calibrate=use_lsc)
            if use_lsl
            else None
        )
        #: The fitted imputer of ``imputer="linear"`` (not in the state dict).
        self.linear_imputer = (
            LinearImputer(self.modalities, dim) if imputer == "linear" else None
        )
        self.reset_parameters()

    @classmethod
    def from_pair(
        cls,
        pair: MMKGPair,
        *,
        modalities: list[str] | None = None,
        shared: tuple[str, ...] = ("img", "text"),
        **kwargs,
    ) -> ALMEA:
        """An ALMEA sized for ``pair``: its entity counts and feature modalities
        (or the given subset; ``"graph"`` in ``modalities`` toggles the GAT)."""
        feature_modalities = pair.modalities
        if modalities is not None:
            unknown = set(modalities) - set(feature_modalities) - {GRAPH}
            if unknown:
                raise ValueError(
                    f"unknown modalities {sorted(unknown)}; {pair.name} has "
                    f"{[GRAPH] + feature_modalities}"
                )
            kwargs.setdefault("use_graph", GRAPH in modalities)
            feature_modalities = [m for m in feature_modalities if m in modalities]
        inputs = PairInputs.from_pair(pair, feature_modalities)
        return cls(pair.num_entities, inputs.in_channels(shared), **kwargs)

    def reset_parameters(self) -> None:
        for module in (
            self.structure,
            self.fusion,
            self.modality_weighting,
            self.lsl,
            self.lsc,
        ):
            if module is not None:
                module.reset_parameters()
        for encoder in self.encoders.values():
            encoder.reset_parameters()

    def inputs(self, pair: MMKGPair) -> PairInputs:
        """The tensors :meth:`forward` reads from ``pair`` (gathered anew on every
        call: build them once and pass them on when calling repeatedly)."""
        if pair.num_entities != self.num_entities:
            raise ValueError(
                f"model built for {self.num_entities} entities, "
                f"pair has {pair.num_entities}"
            )
        return PairInputs.from_pair(pair, sorted(self.in_channels))

    def forward(
        self,
        x_dict: dict[str, PairTensor],
        edge_index: Tensor,
        present_dict: dict[str, Tensor] | None = None,
        source_index: Tensor | None = None,
        target_index: Tensor | None = None,
        *,
        node_index: Tensor | None = None,
        graph_values: GraphValues | None = None,
        num_sampled_nodes_per_hop: Sequence[int] | None = None,
        num_sampled_edges_per_hop: Sequence[int] | None = None,
    ) -> ALMEAOutput:
        r"""Modality and joint embeddings of the given source and target entities.

        The GAT runs on the graph ``edge_index`` describes: the whole union graph,
        or, with ``node_index``, a sampled subgraph (mini-batch training,
        :class:`~almea_pyg.train.sampling.NeighborSampling`) whose row ``r`` is
        entity ``node_index[r]`` and starts from that entity's row of the
        embedding table. Feature modalities are projected only for the rows asked
        for, from the whole graph's ``x_dict`` and ``present_dict`` either way.

        Args:
            x_dict (dict): Features of each feature modality, ``(source, target)``.
            edge_index (torch.Tensor): Relation edges of both KGs in the shared
                index space (target entities offset by :math:`N_s`).
            present_dict (dict, optional): Which entities have each feature
                modality (default: all of them; the graph is always present).
            source_index (torch.Tensor, optional): Source entities to embed
                (default: all).
            target_index (torch.Tensor, optional): Target entities to embed
                (default: all).
            node_index (torch.Tensor, optional): Shared-space ids of the nodes of
                ``edge_index`` when it is a subgraph; it must hold every entity
                asked for (default: ``edge_index`` is the whole graph).
            graph_values (GraphValues, optional): With ``node_index``, the
                GAT's values on the whole graph (:meth:`graph_hidden_values`,
                :meth:`graph_values`): the subgraph's layers take them
                and keep their own gradients, so the seeds' graph embeddings
                are the whole graph's (see
                :class:`~almea_pyg.nn.encoders.StructuralEncoder`).
            num_sampled_nodes_per_hop (Sequence[int], optional): With
                ``node_index`` and ``num_sampled_edges_per_hop``, the sample's
                rows and edges per hop: each GAT layer then runs only on the part
                the seeds read (the entities asked for must be seeds).
            num_sampled_edges_per_hop (Sequence[int], optional): The sample's
                edges per hop, from hop 1.

        Shapes:
            - **input:** ``x_dict`` :math:`\{m: ((N_s, F^m_s), (N_t, F^m_t))\}`,
              ``edge_index`` :math:`(2, E)` (or :math:`(2, e)` over the :math:`n`
              rows of ``node_index`` :math:`(n,)`), ``present_dict``
              :math:`\{m: (N_s + N_t,)\}`, ``source_index`` :math:`(B_s,)`,
              ``target_index`` :math:`(B_t,)`
            - **output:** :class:`ALMEAOutput`: ``h`` :math:`\{m: (B_s + B_t, d)\}`,
              ``present`` :math:`\{m: (B_s + B_t,)\}`, ``joint``
              :math:`(B_s + B_t, D)` (:math:`D = d`, or :math:`M d` for
              ``fusion="concat"``)
        """
        num_s, num_t = self.num_entities
        for m, (xs, xt) in x_dict.items():
            if (xs.size(0), xt.size(0)) != self.num_entities:
                raise ValueError(
                    f"model built for {self.num_entities} entities, features "
                    f"{m!r} have {(xs.size(0), xt.size(0))}"
                )
        index = None
        if source_index is not None or target_index is not None:
            device = edge_index.device
            if source_index is None:
                source_index = torch.arange(num_s, device=device)
            if target_index is None:
                target_index = torch.arange(num_t, device=device)
            index = torch.cat([source_index, target_index + num_s])
        h = {}
        if self.structure is not None:
            h[GRAPH] = self.structure(
                edge_index,
                node_index,
                graph_values,
                num_sampled_nodes_per_hop=num_sampled_nodes_per_hop,
                num_sampled_edges_per_hop=num_sampled_edges_per_hop,
            )
            if node_index is not None:
                # trimmed, the output holds the first rows of node_index only
                rows = node_index[: h[GRAPH].size(0)]
                h[GRAPH] = h[GRAPH][_rows_of(rows, index, num_s + num_t)]
            elif index is not None:
                h[GRAPH] = h[GRAPH][index]
        return self._with_features(
            h, x_dict, present_dict, source_index, target_index, index
        )

    def _with_features(
        self,
        h: dict[str, Tensor],
        x_dict: dict[str, PairTensor],
        present_dict: dict[str, Tensor] | None,
        source_index: Tensor | None,
        target_index: Tensor | None,
        index: Tensor | None,
    ) -> ALMEAOutput:
        """:meth:`forward` from the graph embedding ``h`` of the rows asked for
        (``index``: source rows, then target rows offset by :math:`N_s`; ``None``:
        all): the feature modalities, the presence masks and the fusion."""
        num_s, num_t = self.num_entities
        for name, encoder in self.encoders.items():
            xs, xt = x_dict[name]
            if index is not None:
                xs, xt = xs[source_index], xt[target_index]
            h[name] = torch.cat([encoder(xs, 0), encoder(xt, 1)], dim=0)
        rows = num_s + num_t if index is None else index.numel()
        device = next(iter(h.values())).device
        present = {}
        for m in self.modalities:
            mask = None if present_dict is None else present_dict.get(m)
            if mask is None:
                present[m] = torch.ones(rows, dtype=torch.bool, device=device)
            else:
                present[m] = mask if index is None else mask[index]
        joint = self.fusion(h, present)
        num_source = num_s if index is None else source_index.numel()
        return ALMEAOutput(h, present, joint, num_source)

    def loss(self, out: ALMEAOutput, pairs: Tensor | None = None) -> dict[str, Tensor]:
        """The training losses of a :meth:`forward` over seed pairs (source
        ``i`` aligned with target ``i``), by :attr:`criterion`; with ``pairs``
        (positions in the batch), only their share of each loss.

        Returns:
            ``{"loss": total, "base": ..., "scl": ..., ...}`` (scalars).
        """
        return self.criterion(out, self, pairs)

    @torch.no_grad()
    def modality_weights(self) -> dict[str, float]:
        """The global fusion weights :math:`\\pi_m` by modality (they sum to 1)."""
        return dict(zip(self.fusion.modalities, self.fusion.weights.tolist()))

    @property
    def can_impute(self) -> bool:
        """Whether :meth:`impute` has an imputer: a linear one, or LSL."""
        return self.imputer == "linear" or self.lsl is not None

    def impute(
        self, h: dict[str, Tensor], present: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``h`` with the missing modality embeddings imputed by the model's
        ``imputer``, and the presence masks after it: LSL imputes every one, a
        linear imputer (fitted first: :meth:`fit_imputer`) those of the
        modalities it predicts on held-out entities.

        Shapes:
            ``{m: (N, d)}``, ``{m: (N,)}`` -> ``({m: (N, d)}, {m: (N,)})``
        """
        if self.linear_imputer is not None:
            return self.linear_imputer(h, present)
        if self.lsl is None or self.lsc is None:
            raise RuntimeError(
                "LSL imputation needs use_lsl=True; imputer='linear' works without"
            )
        imputed = impute_modalities(h, present, lsl=self.lsl, lsc=self.lsc)
        return imputed, {m: torch.ones_like(mask) for m, mask in present.items()}

    @torch.no_grad()
    def fit_imputer(
        self,
        data: MMKGPair | PairInputs,
        *,
        batch_size: int | None = EMBED_BATCH_SIZE,
    ) -> None:
        """Fit the linear imputer on the modality embeddings of every entity of
        ``data`` (in eval mode, ``batch_size`` entities at a time); nothing to
        do for LSL, whose decoders are trained with the model."""
        if self.linear_imputer is None:
            return
        inputs = self.inputs(data) if isinstance(data, MMKGPair) else data
        was_training = self.training
        self.eval()
        self._fit_linear(inputs, batch_size, self._graph(inputs))
        self.train(was_training)

    def _fit_linear(
        self, inputs: PairInputs, batch_size: int | None, graph: Tensor | None
    ) -> None:
        """Fit the linear imputer given the GAT's output ``graph``."""
        self.linear_imputer.fit(
            (out.h, out.present) for _, out in self._outputs(inputs, batch_size, graph)
        )

    def graph_hidden_values(self, edge_index: Tensor) -> list[Tensor]:
        """The GAT's hidden layers' outputs on the whole graph ``edge_index``,
        without gradients (``graph_values.hidden`` of :meth:`forward`; ``[]``
        without the graph modality)."""
        if self.structure is None:
            return []
        return self.structure.hidden_values(edge_index)

    def graph_values(
        self,
        hidden: Sequence[Tensor],
        edge_index: Tensor,
        node_index: Tensor,
        num_seeds: int,
    ) -> GraphValues | None:
        """The ``graph_values`` of :meth:`forward` for a subgraph whose first
        ``num_seeds`` rows are its seeds: the hidden layers' ``hidden``
        (:meth:`graph_hidden_values`) and the last layer's output at the seeds,
        computed over ``edge_index`` on ``node_index``, which must hold every
        incoming edge of theirs (a one-hop sample with fan-out ``-1``; ``None``
        without the graph modality)."""
        if self.structure is None:
            return None
        output = self.structure.output_values(hidden, edge_index, node_index, num_seeds)
        return GraphValues(hidden, output)

    def _graph(self, inputs: PairInputs) -> Tensor | None:
        """The GAT's embedding of every entity (``None`` without the graph)."""
        return None if self.structure is None else self.structure(inputs.edge_index)

    @torch.no_grad()
    def embed(
        self,
        data: MMKGPair | PairInputs,
        *,
        impute_missing: bool | None = None,
        batch_size: int | None = EMBED_BATCH_SIZE,
    ) -> tuple[Tensor, Tensor]:
        """Joint embeddings of all source and target entities, ``(N_s, D), (N_t,
        D)``, of a pair or of its :meth:`inputs`, in eval mode.

        With ``impute_missing`` (default: the model's setting), missing modality
        embeddings are replaced by :meth:`impute` before fusion (with
        ``imputer="linear"``, fitted first on ``data``: :meth:`fit_imputer`). The
        GAT runs once on the whole graph; everything after it works row by row,
        ``batch_size`` entities at a time (``None``: all at once), so that the
        modality embeddings of only one batch are held besides the graph's: the
        result is the same.
        """
        inputs = self.inputs(data) if isinstance(data, MMKGPair) else data
        impute = self.impute_missing if impute_missing is None else impute_missing
        impute = impute and self.can_impute
        was_training = self.training
        self.eval()
        graph = self._graph(inputs)  # once, for the fit and the embedding
        if impute and self.linear_imputer is not None:
            self._fit_linear(inputs, batch_size, graph)
        num_s = self.num_entities[0]
        joint = None
        for index, out in self._outputs(inputs, batch_size, graph):
            rows = (
                self.fusion(*self.impute(out.h, out.present)) if impute else out.joint
            )
            if index is None:
                joint = rows
                break
            if joint is None:
                joint = rows.new_empty(sum(self.num_entities), rows.size(1))
            joint[index] = rows
        self.train(was_training)
        return joint[:num_s], joint[num_s:]

    def _outputs(
        self, inputs: PairInputs, batch_size: int | None, graph: Tensor | None
    ) -> Iterator[tuple[Tensor | None, ALMEAOutput]]:
        """:meth:`forward` of every entity given the GAT's output ``graph``
        (:meth:`_graph`), ``batch_size`` entities at a time (``None``: all at
        once): ``(index, output)`` per batch, ``index`` its rows in the shared
        space (``None``: all)."""
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        total = sum(self.num_entities)
        if batch_size is None or batch_size >= total:
            h = {} if graph is None else {GRAPH: graph}
            yield (
                None,
                self._with_features(
                    h, inputs.features, inputs.present, None, None, None
                ),
            )
            return
        num_s = self.num_entities[0]
        for start in range(0, total, batch_size):
            index = torch.arange(
                start, min(start + batch_size, total), device=inputs.edge_index.device
            )
            h = {} if graph is None else {GRAPH: graph[index]}
            source = index[index < num_s]
            target = index[index >= num_s] - num_s
            yield (
                index,
                self._with_features(
                    h, inputs.features, inputs.present, source, target, index
                ),
            )

    def __repr__(self) -> str:
        parts = [
            f"modalities={self.modalities}",
            f"dim={self.dim}",
            f"lsl={self.use_lsl}",
            f"lsc={self.use_lsl and self.use_lsc}",
        ]
        return f"{self.__class__.__name__}({', '.join(parts)})"


def _rows_of(node_index: Tensor, index: Tensor | None, num_nodes: int) -> Tensor:
    """Where the entities ``index`` (default: all ``num_nodes``) are in
    ``node_index``; an error if one is not."""
    if index is None:
        index = torch.arange(num_nodes, device=node_index.device)
    ids, order = torch.sort(node_index)
    pos = torch.searchsorted(ids, index).clamp_(max=ids.numel() - 1)
    if not torch.equal(ids[pos], index):
        raise ValueError("node_index lacks entities asked for")
    return order[pos]
