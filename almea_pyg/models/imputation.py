"""Imputation of missing modality embeddings by LSL's decoders (Section 3.1)."""

from __future__ import annotations

import torch
from torch import Tensor

from almea_pyg.nn.lsc import LatentSemanticCalibration
from almea_pyg.nn.lsl import LatentSemanticLearning


def impute_modalities(
    h: dict[str, Tensor],
    present: dict[str, Tensor],
    *,
    lsl: LatentSemanticLearning,
    lsc: LatentSemanticCalibration,
) -> dict[str, Tensor]:
    r"""``h`` with the embedding of every missing modality replaced by its
    reconstruction :math:`\hat h^m = \mathrm{Decoder}_m(\mathbf{z})`, where
    :math:`\mathbf{z}` is the calibrated fused latent (LSC) of the modalities the
    entity has: what the decoders learn for a modality dropped by LSL's masking.

    Only rows missing a modality go through the latent block; the others are
    returned as they are.

    Args:
        h (dict): Modality embeddings, over ``lsl.modalities``.
        present (dict): Which rows have each modality.
        lsl (LatentSemanticLearning): The VAEs (encoders and decoders).
        lsc (LatentSemanticCalibration): Calibration and latent fusion.

    Shapes:
        - **input:** ``h`` :math:`\{m: (N, d)\}`, ``present`` :math:`\{m: (N,)\}`
        - **output:** :math:`\{m: (N, d)\}`
    """
    modalities = lsl.modalities
    mask = torch.stack([present[m] for m in modalities], dim=-1)
    rows = (~mask).any(dim=-1).nonzero().flatten()
    if rows.numel() == 0:
        return h
    hb = {m: h[m][rows] * present[m][rows].unsqueeze(-1) for m in modalities}
    latents = {m: lsl.encode(m, hb[m])[1] for m in modalities}
    _, _, fused = lsc(latents, {m: present[m][rows] for m in modalities})
    out = {}
    for m in modalities:
        missing = ~present[m][rows]
        out[m] = h[m].clone()
        out[m][rows[missing]] = lsl.decode(m, fused[missing])
    return out
