"""The training objective of ALMEA on a batch of seed pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from almea_pyg.nn.losses import (
    info_nce,
    inter_modal_alignment,
    joint_alignment_loss,
    kl_standard_normal,
    reconstruction_loss,
    semantic_calibration_loss,
)
from almea_pyg.nn.lsl import LSLNoise

if TYPE_CHECKING:
    from almea_pyg.models.almea import ALMEA, ALMEAOutput


class ALMEALoss(nn.Module):
    r"""ALMEA's objective (Section 3.3 and Algorithm 1 of the paper):

    .. math::
        \mathcal{L} = \mathcal{L}_{base} + \lambda_1 \mathcal{L}_{SCL}
        + \lambda_2 \mathcal{L}_{DML} + \lambda_3 \mathcal{L}_{URL}
        + \lambda_4 \mathcal{L}_{JAL}.

    :math:`\mathcal{L}_{base}` (MCLEA's, Section 2) is the in-batch InfoNCE of the
    joint embeddings plus, per modality, InfoNCE and the inter-modal alignment
    term over the pairs where both sides have the modality, under the model's
    learned uncertainty weights. The latent terms run the model's LSL and LSC on
    the batch: masked and unmasked latents, the calibrated fused latents
    (``L_SCL``, Eq. 2), the KL terms (``L_DML``, Eq. 9), the decoders'
    reconstructions (``L_URL``, Eq. 10) and their fused joint embeddings
    (``L_JAL``, Eq. 11); a base model (no LSL) has none.

    The latent terms are means over the batch's pairs (``L_URL``: over the present
    rows of each modality), so the batch is split into chunks of
    ``latent_chunk_size`` pairs whose sums are added up; with gradients on, each
    chunk's activations are recomputed in backward (activation checkpointing)
    instead of kept: at FB15K-DB15K size this removes ~0.5 GiB from the peak for
    one more forward of the latent block. The masks and noise are drawn for the
    whole batch first, so the chunks see exactly the draws of one unchunked pass.

    Given ``pairs`` (positions in the batch), only those pairs' terms are
    computed, each divided as in the whole batch's loss (the in-batch InfoNCE
    rows and columns still meet every pair of the batch as negatives, the
    uncertainty regulariser counts ``len(pairs) / B`` of itself): the losses of
    a partition of the batch sum to the batch's, term by term, and so do their
    gradients. :mod:`almea_pyg.train.distributed` splits a batch over processes
    this way.

    Args:
        lambda_scl, lambda_dml, lambda_url, lambda_jal (float): Weights of the
            latent terms; ``0`` switches a term off. (default: ``1.0`` each)
        temperature (float): InfoNCE temperature. (default: ``0.1``)
        ial_temperature (float): Inter-modal alignment temperature.
            (default: ``4.0``)
        latent_chunk_size (int, optional): Seed pairs per chunk of the latent
            terms; ``None``: one chunk, kept. (default: ``512``)

    Shapes:
        - **input:** an :class:`~almea_pyg.models.almea.ALMEAOutput` of :math:`B`
          seed pairs (``num_source`` :math:`= B`, rows :math:`2B`: source ``i``
          aligned with target :math:`B + i`), the model that computed it and
          optionally ``pairs`` :math:`(n,)`
        - **output:** ``{"loss": total, "joint", "modal", "base", "scl", "dml",
          "url", "jal"}``, scalars (the last four with LSL only)
    """

    def __init__(
        self,
        *,
        lambda_scl: float = 1.0,
        lambda_dml: float = 1.0,
        lambda_url: float = 1.0,
        lambda_jal: float = 1.0,
        temperature: float = 0.1,
        ial_temperature: float = 4.0,
        latent_chunk_size: int | None = 512,
    ) -> None:
        super().__init__()
        if latent_chunk_size is not None and latent_chunk_size < 1:
            raise ValueError(
                f"latent_chunk_size must be positive, got {latent_chunk_size}"
            )
        self.lambdas = {
            "scl": lambda_scl,
            "dml": lambda_dml,
            "url": lambda_url,
            "jal": lambda_jal,
        }
        self.temperature = temperature
        self.ial_temperature = ial_temperature
        self.latent_chunk_size = latent_chunk_size

    def forward(
        self, out: ALMEAOutput, model: ALMEA, pairs: Tensor | None = None
    ) -> dict[str, Tensor]:
        batch = out.num_source
        if out.joint.size(0) != 2 * batch:
            raise ValueError(
                f"the loss needs seed pairs: {batch} sources, "
                f"{out.joint.size(0) - batch} targets"
            )
        h, present, joint = out.h, out.present, out.joint
        src, tgt = slice(0, batch), slice(batch, 2 * batch)
        losses = {
            "joint": info_nce(
                joint[src], joint[tgt], temperature=self.temperature, rows=pairs
            )
        }
        modality_losses = []
        for m in model.modalities:
            both = present[m][src] & present[m][tgt]
            hs, ht = h[m][src][both], h[m][tgt][both]
            if hs.size(0) < 2:
                modality_losses += [joint.new_zeros(()), joint.new_zeros(())]
                continue
            rows = None if pairs is None else _rows_within(both, pairs)
            modality_losses.append(
                info_nce(hs, ht, temperature=self.temperature, rows=rows)
            )
            modality_losses.append(
                inter_modal_alignment(
                    joint[src][both],
                    joint[tgt][both],
                    hs,
                    ht,
                    temperature=self.ial_temperature,
                    rows=rows,
                )
            )
        share = 1.0 if pairs is None else pairs.numel() / batch
        losses["modal"] = model.modality_weighting(
            torch.stack(modality_losses), share=share
        )
        losses["base"] = losses["joint"] + losses["modal"]
        total = losses["base"]
        if model.lsl is not None:
            latent = self.latent_losses(model, h, present, pairs)
            losses.update(latent)
            total = total + sum(self.lambdas[k] * latent[k] for k in latent)
        losses["loss"] = total
        return losses

    def latent_losses(
        self,
        model: ALMEA,
        h: dict[str, Tensor],
        present: dict[str, Tensor],
        pairs: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``L_SCL``, ``L_DML``, ``L_URL`` and ``L_JAL`` of a batch whose rows are
        its sources, then its targets, in chunks of pairs (of ``pairs`` only, if
        given: their share of the batch's terms). The masks and noise are drawn
        for the whole batch either way, so a share sees the draws its pairs get
        in the whole batch."""
        first = next(iter(h.values()))
        batch, device = first.size(0) // 2, first.device
        own = torch.arange(batch, device=device) if pairs is None else pairs
        num = own.numel()
        size = max(1, min(self.latent_chunk_size or num, num))
        recompute = torch.is_grad_enabled() and size < num
        noise = model.lsl.draw(present) if model.lsl.training else None
        sums = None
        for start in range(0, num, size):
            chunk = own[start : start + size].to(device)
            rows = torch.cat([chunk, chunk + batch])
            args = [{m: x[rows] for m, x in d.items()} for d in (h, present)]
            if noise is not None:
                args.append(
                    LSLNoise(*({m: x[rows] for m, x in d.items()} for d in noise))
                )
            if recompute:
                part = checkpoint(self._latent_sums, model, *args, use_reentrant=False)
            else:
                part = self._latent_sums(model, *args)
            sums = part if sums is None else [a + b for a, b in zip(sums, part)]
        if sums is None:  # a share without pairs
            zeros = first.new_zeros(len(model.modalities))
            sums = [zeros.sum(), zeros, zeros, zeros.sum()]
        scl, dml, url, jal = sums
        rows_present = torch.stack([present[m].sum() for m in model.modalities])
        has_rows = rows_present > 0
        return {
            "scl": scl / batch,
            "dml": (dml / (2 * batch)).mean(),
            "url": (url[has_rows] / rows_present[has_rows]).mean(),
            "jal": jal / batch,
        }

    @staticmethod
    def _latent_sums(
        model: ALMEA,
        h: dict[str, Tensor],
        present: dict[str, Tensor],
        noise: LSLNoise | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sums over a chunk: ``L_SCL`` and ``L_JAL`` over pairs, ``L_DML`` over
        rows and ``L_URL`` over present rows (both per modality)."""
        modalities = model.modalities
        out = model.lsl(h, present, noise)
        kept = {m: present[m] & ~out.dropped[m] for m in modalities}
        cal_masked, _, fused_masked = model.lsc(out.z_masked, kept)
        _, _, fused = model.lsc(out.z, present)
        half = next(iter(h.values())).size(0) // 2
        scl = half * (
            semantic_calibration_loss(fused_masked[:half], fused[half:])
            + semantic_calibration_loss(fused_masked[half:], fused[:half])
        )
        dml = torch.stack(
            [
                kl_standard_normal(out.mu[m], out.logvar[m])
                + kl_standard_normal(out.mu_masked[m], out.logvar_masked[m])
                for m in modalities
            ]
        ) * (2 * half)
        decoded, url = {}, []
        for m in modalities:
            z_in = torch.where(
                out.dropped[m].unsqueeze(-1), fused_masked, cal_masked[m]
            )
            decoded[m] = model.lsl.decode(m, z_in)
            url.append(
                reconstruction_loss(decoded[m], h[m], present[m], reduction="sum")
            )
        joint_decoded = model.fusion(decoded)
        jal = half * joint_alignment_loss(joint_decoded[:half], joint_decoded[half:])
        return scl, dml, torch.stack(url), jal

    def __repr__(self) -> str:
        lambdas = ", ".join(f"{k}={v}" for k, v in self.lambdas.items())
        return (
            f"{self.__class__.__name__}({lambdas}, temperature={self.temperature}, "
            f"ial_temperature={self.ial_temperature}, "
            f"latent_chunk_size={self.latent_chunk_size})"
        )


def _rows_within(mask: Tensor, pairs: Tensor) -> Tensor:
    """Where ``pairs`` that ``mask`` keeps fall among the kept rows."""
    pairs = pairs.to(mask.device)
    return (mask.cumsum(0) - 1)[pairs][mask[pairs]]
