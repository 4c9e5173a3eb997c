"""Latent Semantic Calibration (LSC): tanh calibration and per-entity fusion."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LatentSemanticCalibration(nn.Module):
    r"""Latent Semantic Calibration (Section 3.2 of the paper).

    Each modality's latent is calibrated by :math:`\mathbf{z}^m =
    \tanh(W_m z^m + b_m)`; an MLP :math:`[d \to d \to 1]` per modality scores the
    calibrated latent, and the scores are normalised across the modalities an
    entity has with a softmax (the paper's ratio form, made stable), giving the
    fused latent :math:`\mathbf{z} = \sum_m w^m \odot \mathbf{z}^m`.

    Args:
        modalities (Sequence[str]): Modality names.
        dim (int): Latent size :math:`d`. (default: ``300``)
        calibrate (bool): If ``False``, latents pass through uncalibrated (the
            "w/o LSC" ablation keeps only the weighting). (default: ``True``)

    Shapes:
        - **input:** ``{m: (B, d)}`` latents, ``{m: (B,)}`` presence masks
        - **output:** calibrated ``{m: (B, d)}``, weights :math:`(B, M)`,
          fused :math:`(B, d)`
    """

    def __init__(
        self, modalities: Sequence[str], dim: int = 300, *, calibrate: bool = True
    ) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.dim = dim
        self.calibrate = calibrate
        self.calibration = nn.ModuleDict(
            {m: nn.Linear(dim, dim) for m in self.modalities}
        )
        self.scorers = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))
                for m in self.modalities
            }
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def calibrated(self, name: str, z: Tensor) -> Tensor:
        return torch.tanh(self.calibration[name](z)) if self.calibrate else z

    def modality_weights(
        self, z: dict[str, Tensor], present: dict[str, Tensor]
    ) -> Tensor:
        """Softmax of the modality scores over the modalities each entity has.

        An entity with none of the modalities gets uniform weights.
        """
        scores = torch.cat([self.scorers[m](z[m]) for m in self.modalities], dim=-1)
        mask = torch.stack([present[m] for m in self.modalities], dim=-1)
        none = ~mask.any(dim=-1, keepdim=True)
        weights = scores.masked_fill(~(mask | none), float("-inf")).softmax(dim=-1)
        return torch.where(none, torch.full_like(weights, 1.0 / mask.size(-1)), weights)

    def forward(
        self, z: dict[str, Tensor], present: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        calibrated = {m: self.calibrated(m, z[m]) for m in self.modalities}
        weights = self.modality_weights(calibrated, present)
        stacked = torch.stack([calibrated[m] for m in self.modalities], dim=1)
        fused = (weights.unsqueeze(-1) * stacked).sum(dim=1)
        return calibrated, weights, fused

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({len(self.modalities)} modalities, "
            f"dim={self.dim}, calibrate={self.calibrate})"
        )
