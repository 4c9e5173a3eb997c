"""How much information LSL's latents carry, per modality."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from almea_pyg.data.pair import MMKGPair
from almea_pyg.models.imputation import impute_modalities
from almea_pyg.models.inputs import PairInputs
from almea_pyg.nn.losses import kl_standard_normal

if TYPE_CHECKING:
    from almea_pyg.models.almea import ALMEA


@torch.no_grad()
def latent_diagnostics(
    model: ALMEA,
    data: MMKGPair | PairInputs,
    *,
    threshold: float = 0.01,
    chunk_size: int = 4096,
) -> dict[str, dict[str, float]]:
    """Per modality, over the entities of both KGs that have it:

    - ``entities``: how many they are.
    - ``active_units``: latent dimensions whose posterior mean varies across
      entities (variance above ``threshold``; Burda et al., 2016). ``0`` is a
      posterior collapse: the latent is the same for every entity.
    - ``kl_per_dim``: ``L_DML`` of the unmasked pass divided by ``d``.
    - ``reconstruction_r2``: :math:`R^2` of the decoder on the entity's own
      calibrated latent against ``h^m``.
    - ``imputation_r2``: :math:`R^2` of what
      :func:`~almea_pyg.models.impute_modalities` would put in place of ``h^m``
      were the modality missing (from the other modalities).

    An :math:`R^2` of ``0`` is no better than one mean vector for all entities.
    The model runs in eval mode on a pair or its :meth:`~ALMEA.inputs`; entities
    are processed ``chunk_size`` at a time (running sums in float64).
    """
    if model.lsl is None or model.lsc is None:
        raise RuntimeError("latent diagnostics need LSL (use_lsl=True)")
    inputs = model.inputs(data) if isinstance(data, MMKGPair) else data
    was_training = model.training
    model.eval()
    out = model(inputs.features, inputs.edge_index, inputs.present)
    stats = {}
    for m in model.modalities:
        index = out.present[m].nonzero().flatten()
        if index.numel() == 0:
            continue
        sums = _chunked_sums(
            index,
            chunk_size,
            partial(_diagnostic_sums, model, m, out.h, out.present),
        )
        n = index.numel()
        mu_var = (sums["mu_sq"] - n * (sums["mu"] / n).pow(2)) / max(n - 1, 1)
        stats[m] = {
            "entities": n,
            "active_units": int((mu_var > threshold).sum()),
            "kl_per_dim": float(sums["kl"]) / (n * model.lsl.dim),
            "reconstruction_r2": _r2(sums, "own_sse", n),
            "imputation_r2": _r2(sums, "imputed_sse", n),
        }
    model.train(was_training)
    return stats


@torch.no_grad()
def imputation_r2(
    model: ALMEA,
    data: MMKGPair | PairInputs,
    modality: str,
    rows: Tensor,
    *,
    chunk_size: int = 4096,
) -> float | None:
    """:math:`R^2` of the model's imputation (:meth:`~ALMEA.impute`: LSL's, as
    :func:`latent_diagnostics` computes ``imputation_r2`` over all entities, or
    a fitted linear one) of ``h^m`` on ``rows``, were ``m`` missing there.

    ``rows`` index the pair's shared entity space (target entity ``j`` is
    ``N_s + j``); the target is ``h^m`` of their features in ``data``, whatever
    its mask says, so a controlled benchmark can pass the true features of
    entities the model was trained without. ``None`` for no rows.
    """
    if not model.can_impute:
        raise RuntimeError("imputation needs LSL (use_lsl=True) or imputer='linear'")
    if rows.numel() == 0:
        return None
    inputs = model.inputs(data) if isinstance(data, MMKGPair) else data
    was_training = model.training
    model.eval()
    out = model(inputs.features, inputs.edge_index, inputs.present)
    rows = rows.to(inputs.edge_index.device)

    def imputed_sums(chunk: Tensor) -> dict[str, Tensor]:
        h = {k: out.h[k][chunk] for k in model.modalities}
        present = {k: out.present[k][chunk] for k in model.modalities}
        present[modality] = torch.zeros_like(present[modality])
        imputed, after = model.impute(h, present)
        # rows it leaves missing count as the zero vector
        imputed = imputed[modality] * after[modality].unsqueeze(-1)
        target = h[modality]
        return {
            "target": target.sum(dim=0),
            "target_sq": target.pow(2).sum(),
            "imputed_sse": (imputed - target).pow(2).sum(),
        }

    sums = _chunked_sums(rows, chunk_size, imputed_sums)
    model.train(was_training)
    return _r2(sums, "imputed_sse", rows.numel())


def _chunked_sums(
    index: Tensor, chunk_size: int, sums_of: Callable[[Tensor], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """``sums_of`` a chunk of ``index``, ``chunk_size`` rows at a time, summed in
    float64."""
    sums: dict[str, Tensor] = {}
    for chunk in index.split(chunk_size):
        part = sums_of(chunk)
        for key, value in part.items():
            sums[key] = sums.get(key, 0) + value.double()
    return sums


def _r2(sums: dict[str, Tensor], sse: str, n: int) -> float:
    """``1 - sums[sse] / total``, the total sum of squares of the target rows
    around their mean."""
    mean = sums["target"] / n
    total = sums["target_sq"] - n * mean.pow(2).sum()
    return float(1 - sums[sse] / total)


def _diagnostic_sums(
    model: ALMEA,
    m: str,
    h: dict[str, Tensor],
    present: dict[str, Tensor],
    rows: Tensor,
) -> dict[str, Tensor]:
    """Sums over ``rows`` (entities having modality ``m``) behind
    :func:`latent_diagnostics`."""
    lsl, lsc = model.lsl, model.lsc
    target = h[m][rows]
    _, mu, logvar = lsl.encode(m, target)
    own = lsl.decode(m, lsc.calibrated(m, mu))
    others = {k: present[k][rows] for k in model.modalities}
    others[m] = torch.zeros_like(others[m])
    imputed = impute_modalities(
        {k: h[k][rows] for k in model.modalities}, others, lsl=lsl, lsc=lsc
    )[m]
    return {
        "target": target.sum(dim=0),
        "target_sq": target.pow(2).sum(),
        "mu": mu.sum(dim=0),
        "mu_sq": mu.pow(2).sum(dim=0),
        "kl": kl_standard_normal(mu, logvar) * rows.numel(),
        "own_sse": (own - target).pow(2).sum(),
        "imputed_sse": (imputed - target).pow(2).sum(),
    }
