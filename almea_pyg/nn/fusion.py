"""Global (instance-invariant) fusion of modality embeddings into a joint embedding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FusionMode = Literal["weighted", "concat"]


class ModalityFusion(nn.Module):
    r"""Joint entity embedding from modality embeddings (Section 2 of the paper):

    .. math::
        h = \sum_m \pi_m \cdot \mathrm{normalize}(h^m), \qquad
        \pi = \mathrm{softmax}(w),

    with :math:`w` learnable and global (the paper's Appendix D.2 argues for
    instance-invariant weights). ``mode="concat"`` returns
    :math:`[\pi_m \cdot \mathrm{normalize}(h^m)]_m` instead (MCLEA's choice).
    Entities lacking a modality contribute a zero vector for it.

    Args:
        modalities (Sequence[str]): Modality names, in a fixed order.
        mode (str): ``"weighted"`` (sum) or ``"concat"``. (default: ``"weighted"``)

    Shapes:
        - **input:** ``{m: (N, d)}``, optional presence masks ``{m: (N,)}``
        - **output:** :math:`(N, d)` (weighted) or :math:`(N, M d)` (concat)
    """

    def __init__(
        self, modalities: Sequence[str], *, mode: FusionMode = "weighted"
    ) -> None:
        super().__init__()
        if mode not in ("weighted", "concat"):
            raise ValueError(f"mode must be 'weighted' or 'concat', got {mode!r}")
        self.modalities = list(modalities)
        self.mode = mode
        self.logits = nn.Parameter(torch.empty(len(self.modalities)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.logits)

    @property
    def weights(self) -> Tensor:
        """The modality weights :math:`\\pi` (sum to 1), in ``modalities`` order."""
        return self.logits.softmax(dim=0)

    def forward(
        self, h: dict[str, Tensor], present: dict[str, Tensor] | None = None
    ) -> Tensor:
        pi = self.weights
        parts = []
        for i, name in enumerate(self.modalities):
            part = pi[i] * F.normalize(h[name], dim=-1)
            if present is not None and name in present:
                part = part * present[name].unsqueeze(-1).to(part.dtype)
            parts.append(part)
        if self.mode == "concat":
            return torch.cat(parts, dim=-1)
        return torch.stack(parts, dim=0).sum(dim=0)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.modalities}, mode={self.mode})"
