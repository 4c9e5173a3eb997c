"""ALMEA: multimodal entity alignment with latent semantic learning and calibration."""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from torch_geometric.nn import GATConv

from almea_pyg.data.pair import MMKGPair
from almea_pyg.metrics.similarity import topk_similarity
from almea_pyg.models.inputs import PairInputs
from almea_pyg.nn.conv import CSRGATConv
from almea_pyg.nn.encoders import FeatureEncoder, StructuralEncoder
from almea_pyg.nn.fusion import FusionMode, ModalityFusion
from almea_pyg.nn.losses import (
    UncertaintyWeighting,
    info_nce,
    inter_modal_alignment,
    joint_alignment_loss,
    kl_standard_normal,
    reconstruction_loss,
    semantic_calibration_loss,
)
from almea_pyg.nn.lsc import LatentSemanticCalibration
from almea_pyg.nn.lsl import LatentSemanticLearning, LSLNoise
from almea_pyg.typing import SimilarityMetric

log = logging.getLogger(__name__)

GRAPH = "graph"


class AlignmentCandidates(NamedTuple):
    """Top-k target candidates of source entities, best first."""

    source_index: Tensor  #: ``(n,)``
    target_index: Tensor  #: ``(n, k)``
    score: Tensor  #: ``(n, k)``
    source_ids: list[str]  #: original identifiers of the sources, ``n``
    target_ids: list[list[str]]  #: original identifiers of the candidates, ``n x k``


class ALMEA(nn.Module):
    r"""ALMEA (Section 3 of the paper) without its active-learning loop.

    Modality encoders (a GAT over the relation graph plus one projection per
    feature modality) feed a global weighted fusion trained with the MCLEA-style
    base objective (in-batch InfoNCE on the joint and each modality embedding plus
    the inter-modal KL term, modality losses under learned uncertainty weights).
    On top, LSL (a masked VAE per modality) and LSC (tanh calibration and
    per-entity latent fusion) add

    .. math::
        \mathcal{L} = \mathcal{L}_{base} + \lambda_1 \mathcal{L}_{SCL}
        + \lambda_2 \mathcal{L}_{DML} + \lambda_3 \mathcal{L}_{URL}
        + \lambda_4 \mathcal{L}_{JAL}.

    The decoder input for a modality dropped by the masking is the calibrated
    fused latent of the entity's remaining modalities, so the decoders learn the
    imputation used at inference (``impute_missing``): an entity lacking modality
    :math:`m` gets :math:`\hat h^m = \mathrm{Decoder}_m(\mathbf{z})`, with
    :math:`\mathbf{z}` fused from the modalities it has.

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
        impute_missing (bool): Impute missing modalities in :meth:`embed`. Off by
            default: on FB15K-DB15K (20 %, 150 epochs) imputed embeddings
            scored MRR 50.57 against 50.92 without; every result file reports
            the other setting too. (default: ``False``)
        latent_chunk_size (int, optional): Seed pairs per chunk of the LSL/LSC
            losses. When training, each chunk's activations are recomputed in
            backward (activation checkpointing) instead of kept, one chunk at a
            time: at FB15K-DB15K size this removes ~0.5 GiB from the peak for
            one more forward of the latent block. ``None``: one chunk, kept.
            (default: ``512``)
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
        impute_missing: bool = False,
        latent_chunk_size: int | None = 512,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.num_entities = tuple(num_entities)
        self.in_channels = dict(in_channels)
        self.dim = dim
        self.use_graph = use_graph
        self.use_lsl = use_lsl
        self.use_lsc = use_lsc
        self.lambdas = {
            "scl": lambda_scl,
            "dml": lambda_dml,
            "url": lambda_url,
            "jal": lambda_jal,
        }
        self.temperature = temperature
        self.ial_temperature = ial_temperature
        self.impute_missing = impute_missing
        if latent_chunk_size is not None and latent_chunk_size < 1:
            raise ValueError(
                f"latent_chunk_size must be positive, got {latent_chunk_size}"
            )
        self.latent_chunk_size = latent_chunk_size
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
            )
            if use_graph
            else None
        )
        self.encoders = nn.ModuleDict(
            {m: FeatureEncoder(size, dim) for m, size in self.in_channels.items()}
        )
        self.fusion = ModalityFusion(self.modalities, mode=fusion)
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
        self._inputs_cache: tuple[int, PairInputs] | None = None
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
        """The pair's model inputs, cached for the last pair seen."""
        if self._inputs_cache is None or self._inputs_cache[0] != id(pair):
            inputs = PairInputs.from_pair(pair, sorted(self.in_channels))
            if pair.num_entities != self.num_entities:
                raise ValueError(
                    f"model built for {self.num_entities} entities, "
                    f"pair has {pair.num_entities}"
                )
            self._inputs_cache = (id(pair), inputs)
        return self._inputs_cache[1]

    def encode(
        self,
        inputs: PairInputs,
        source_index: Tensor | None = None,
        target_index: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Modality embeddings of the given source then target entities.

        Without indices, every entity of both KGs: ``{m: (N_s + N_t, d)}``. The GAT
        always runs on the whole graph; feature modalities are projected only for
        the rows asked for.
        """
        num_s = inputs.num_source
        h = {}
        if self.structure is not None:
            h[GRAPH] = self.structure(inputs.edge_index)
            if source_index is not None:
                h[GRAPH] = h[GRAPH][torch.cat([source_index, target_index + num_s])]
        for name, encoder in self.encoders.items():
            xs, xt = inputs.features[name]
            if source_index is not None:
                xs, xt = xs[source_index], xt[target_index]
            h[name] = torch.cat([encoder(xs, 0), encoder(xt, 1)], dim=0)
        return h

    def presence(self, inputs: PairInputs) -> dict[str, Tensor]:
        """``{m: (N_s + N_t,)}`` presence masks (graph: always present)."""
        present = dict(inputs.present)
        if self.structure is not None:
            present[GRAPH] = torch.ones(
                inputs.num_entities, dtype=torch.bool, device=inputs.edge_index.device
            )
        return {m: present[m] for m in self.modalities}

    def forward(self, pair: MMKGPair, links: Tensor) -> dict[str, Tensor]:
        """The training losses on a batch of seed links.

        Args:
            pair (MMKGPair): The pair (its inputs are cached between calls).
            links (torch.Tensor): Seed links ``(2, B)``.

        Returns:
            ``{"loss": total, "base": ..., "scl": ..., ...}`` (scalars).
        """
        inputs = self.inputs(pair)
        batch = links.size(1)
        h = self.encode(inputs, links[0], links[1])
        index = torch.cat([links[0], links[1] + inputs.num_source])
        present = {m: mask[index] for m, mask in self.presence(inputs).items()}
        joint = self.fusion(h, present)
        src, tgt = slice(0, batch), slice(batch, 2 * batch)
        losses = {
            "joint": info_nce(joint[src], joint[tgt], temperature=self.temperature)
        }
        modality_losses = []
        for m in self.modalities:
            both = present[m][src] & present[m][tgt]
            hs, ht = h[m][src][both], h[m][tgt][both]
            if hs.size(0) < 2:
                modality_losses += [joint.new_zeros(()), joint.new_zeros(())]
                continue
            modality_losses.append(info_nce(hs, ht, temperature=self.temperature))
            modality_losses.append(
                inter_modal_alignment(
                    joint[src][both],
                    joint[tgt][both],
                    hs,
                    ht,
                    temperature=self.ial_temperature,
                )
            )
        losses["modal"] = self.modality_weighting(torch.stack(modality_losses))
        losses["base"] = losses["joint"] + losses["modal"]
        total = losses["base"]
        if self.lsl is not None:
            latent = self.latent_losses(h, present)
            losses.update(latent)
            total = total + sum(self.lambdas[k] * latent[k] for k in latent)
        losses["loss"] = total
        return losses

    def latent_losses(
        self, h: dict[str, Tensor], present: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """The LSL and LSC losses of a batch whose rows are its sources, then targets.

        Each term is a mean over the batch's pairs (``L_URL``: over the present
        rows of each modality), so the batch is split into chunks of
        ``latent_chunk_size`` pairs whose sums are added up; with gradients on,
        every chunk runs under activation checkpointing. The masks and noise are
        drawn for the whole batch first, so the chunks see exactly the draws of
        one unchunked pass.
        """
        first = next(iter(h.values()))
        batch, device = first.size(0) // 2, first.device
        size = min(self.latent_chunk_size or batch, batch)
        recompute = torch.is_grad_enabled() and size < batch
        noise = self.lsl.draw(present) if self.lsl.training else None
        sums = None
        for start in range(0, batch, size):
            pairs = torch.arange(start, min(start + size, batch), device=device)
            rows = torch.cat([pairs, pairs + batch])
            args = [{m: x[rows] for m, x in d.items()} for d in (h, present)]
            if noise is not None:
                args.append(
                    LSLNoise(*({m: x[rows] for m, x in d.items()} for d in noise))
                )
            if recompute:
                part = checkpoint(self._latent_sums, *args, use_reentrant=False)
            else:
                part = self._latent_sums(*args)
            sums = part if sums is None else [a + b for a, b in zip(sums, part)]
        scl, dml, url, jal = sums
        rows_present = torch.stack([present[m].sum() for m in self.modalities])
        has_rows = rows_present > 0
        return {
            "scl": scl / batch,
            "dml": (dml / (2 * batch)).mean(),
            "url": (url[has_rows] / rows_present[has_rows]).mean(),
            "jal": jal / batch,
        }

    def _latent_sums(
        self,
        h: dict[str, Tensor],
        present: dict[str, Tensor],
        noise: LSLNoise | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sums over a chunk: ``L_SCL`` and ``L_JAL`` over pairs, ``L_DML`` over
        rows and ``L_URL`` over present rows (both per modality)."""
        out = self.lsl(h, present, noise)
        kept = {m: present[m] & ~out.dropped[m] for m in self.modalities}
        cal_masked, _, fused_masked = self.lsc(out.z_masked, kept)
        _, _, fused = self.lsc(out.z, present)
        half = next(iter(h.values())).size(0) // 2
        scl = half * (
            semantic_calibration_loss(fused_masked[:half], fused[half:])
            + semantic_calibration_loss(fused_masked[half:], fused[:half])
        )
        dml = torch.stack(
            [
                kl_standard_normal(out.mu[m], out.logvar[m])
                + kl_standard_normal(out.mu_masked[m], out.logvar_masked[m])
                for m in self.modalities
            ]
        ) * (2 * half)
        decoded, url = {}, []
        for m in self.modalities:
            z_in = torch.where(
                out.dropped[m].unsqueeze(-1), fused_masked, cal_masked[m]
            )
            decoded[m] = self.lsl.decode(m, z_in)
            url.append(
                reconstruction_loss(decoded[m], h[m], present[m], reduction="sum")
            )
        joint_decoded = self.fusion(decoded)
        jal = half * joint_alignment_loss(joint_decoded[:half], joint_decoded[half:])
        return scl, dml, torch.stack(url), jal

    @torch.no_grad()
    def modality_weights(self) -> dict[str, float]:
        """The global fusion weights :math:`\\pi_m` by modality (they sum to 1)."""
        return dict(zip(self.fusion.modalities, self.fusion.weights.tolist()))

    @torch.no_grad()
    def embed(
        self, pair: MMKGPair, *, impute_missing: bool | None = None
    ) -> tuple[Tensor, Tensor]:
        """Joint embeddings of the source and target entities, ``(N_s, D), (N_t, D)``.

        With ``impute_missing`` (default: the model's setting; needs LSL), missing
        modality embeddings are replaced by the decoder's reconstruction before
        fusion.
        """
        was_training = self.training
        self.eval()
        inputs = self.inputs(pair)
        h = self.encode(inputs)
        present = self.presence(inputs)
        impute = self.impute_missing if impute_missing is None else impute_missing
        if impute and self.lsl is not None:
            h, present = self.impute(h, present), None
        joint = self.fusion(h, present)
        self.train(was_training)
        return joint[: inputs.num_source], joint[inputs.num_source :]

    def impute(
        self, h: dict[str, Tensor], present: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Replace the embeddings of missing modalities by LSL's reconstruction
        from the calibrated fused latent of the modalities each entity has."""
        if self.lsl is None or self.lsc is None:
            raise RuntimeError("imputation needs LSL (use_lsl=True)")
        mask = torch.stack([present[m] for m in self.modalities], dim=-1)
        rows = (~mask).any(dim=-1).nonzero().flatten()
        if rows.numel() == 0:
            return h
        hb = {m: h[m][rows] * present[m][rows].unsqueeze(-1) for m in self.modalities}
        latents = {m: self.lsl.encode(m, hb[m])[1] for m in self.modalities}
        _, _, fused = self.lsc(latents, {m: present[m][rows] for m in self.modalities})
        out = {}
        for m in self.modalities:
            missing = ~present[m][rows]
            out[m] = h[m].clone()
            out[m][rows[missing]] = self.lsl.decode(m, fused[missing])
        return out

    @torch.no_grad()
    def latent_diagnostics(
        self, pair: MMKGPair, *, threshold: float = 0.01, chunk_size: int = 4096
    ) -> dict[str, dict[str, float]]:
        """How much information LSL's latents carry, per modality.

        Over the entities that have the modality (both KGs):

        - ``active_units``: latent dimensions whose posterior mean varies across
          entities (variance above ``threshold``; Burda et al., 2016). ``0`` is a
          posterior collapse: the latent is the same for every entity.
        - ``kl_per_dim``: ``L_DML`` of the unmasked pass divided by ``d``.
        - ``reconstruction_r2``: :math:`R^2` of the decoder on the entity's own
          calibrated latent against ``h^m``.
        - ``imputation_r2``: :math:`R^2` of what :meth:`impute` would put in place
          of ``h^m`` were the modality missing (from the other modalities).

        An :math:`R^2` of ``0`` is no better than one mean vector for all entities.
        Entities are processed ``chunk_size`` at a time (running sums in float64).
        """
        if self.lsl is None or self.lsc is None:
            raise RuntimeError("latent diagnostics need LSL (use_lsl=True)")
        was_training = self.training
        self.eval()
        inputs = self.inputs(pair)
        h = self.encode(inputs)
        present = self.presence(inputs)
        out = {}
        for m in self.modalities:
            index = present[m].nonzero().flatten()
            if index.numel() == 0:
                continue
            sums: dict[str, Tensor] = {}
            for chunk in index.split(chunk_size):
                part = self._latent_diagnostic_sums(m, h, present, chunk)
                for key, value in part.items():
                    sums[key] = sums.get(key, 0) + value.double()
            n = index.numel()
            mean = sums["target"] / n
            total = sums["target_sq"] - n * mean.pow(2).sum()
            mu_var = (sums["mu_sq"] - n * (sums["mu"] / n).pow(2)) / max(n - 1, 1)
            out[m] = {
                "entities": n,
                "active_units": int((mu_var > threshold).sum()),
                "kl_per_dim": float(sums["kl"]) / (n * self.lsl.dim),
                "reconstruction_r2": float(1 - sums["own_sse"] / total),
                "imputation_r2": float(1 - sums["imputed_sse"] / total),
            }
        self.train(was_training)
        return out

    def _latent_diagnostic_sums(
        self, m: str, h: dict[str, Tensor], present: dict[str, Tensor], rows: Tensor
    ) -> dict[str, Tensor]:
        """Sums over ``rows`` (entities having modality ``m``) behind
        :meth:`latent_diagnostics`."""
        target = h[m][rows]
        _, mu, logvar = self.lsl.encode(m, target)
        own = self.lsl.decode(m, self.lsc.calibrated(m, mu))
        others = {k: present[k][rows] for k in self.modalities}
        others[m] = torch.zeros_like(others[m])
        imputed = self.impute({k: h[k][rows] for k in self.modalities}, others)[m]
        return {
            "target": target.sum(dim=0),
            "target_sq": target.pow(2).sum(),
            "mu": mu.sum(dim=0),
            "mu_sq": mu.pow(2).sum(dim=0),
            "kl": kl_standard_normal(mu, logvar) * rows.numel(),
            "own_sse": (own - target).pow(2).sum(),
            "imputed_sse": (imputed - target).pow(2).sum(),
        }

    @torch.no_grad()
    def candidates(
        self,
        pair: MMKGPair,
        k: int = 10,
        *,
        sources: Tensor | None = None,
        targets: Tensor | None = None,
        metric: SimilarityMetric = "csls",
        csls_k: int = 3,
    ) -> AlignmentCandidates:
        """The ``k`` best target candidates of each source (default: all of them),
        among ``targets`` (default: all), with scores and original identifiers."""
        emb_s, emb_t = self.embed(pair)
        if sources is None:
            sources = torch.arange(emb_s.size(0), device=emb_s.device)
        if targets is None:
            targets = torch.arange(emb_t.size(0), device=emb_t.device)
        score, idx = topk_similarity(
            emb_s[sources], emb_t[targets], k, metric=metric, csls_k=csls_k
        )
        target_index = targets[idx]
        src_ids = pair.source["entity"].get("ids")
        tgt_ids = pair.target["entity"].get("ids")
        source_names = [src_ids[i] for i in sources.tolist()] if src_ids else []
        target_names = (
            [[tgt_ids[j] for j in row] for row in target_index.tolist()]
            if tgt_ids
            else []
        )
        return AlignmentCandidates(
            sources, target_index, score, source_names, target_names
        )

    def __repr__(self) -> str:
        parts = [
            f"modalities={self.modalities}",
            f"dim={self.dim}",
            f"lsl={self.use_lsl}",
            f"lsc={self.use_lsl and self.use_lsc}",
        ]
        return f"{self.__class__.__name__}({', '.join(parts)})"
