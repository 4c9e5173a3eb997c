"""A run's controlled missing modality: remove it, fill it, score the links it hit.

With ``ExperimentConfig.drop_modality`` a run removes that modality from a seeded
share of each KG's entities (:class:`~almea_pyg.data.DropModality`, at the run's
seed) after splitting the pair, and ``ExperimentConfig.fill`` fills every row an
entity lacks before training (:class:`~almea_pyg.data.FillMissing`; ``"zero"``
leaves them missing, as the paper does, for LSL to impute if
``impute_missing``). :func:`evaluate_missing` then scores the test links whose
source or target lost the modality apart from the rest, and how close the rows
the model was given, or LSL's imputation, come to the features removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.transforms import Compose

from almea_pyg.data.missing import DropModality, FillMissing
from almea_pyg.data.pair import FEATURE_PREFIX, MMKGPair, modality_mask
from almea_pyg.metrics.ranking import RankingMetric, alignment_ranks
from almea_pyg.models import ALMEA, imputation_r2
from almea_pyg.typing import ENTITY, SimilarityMetric

if TYPE_CHECKING:
    from almea_pyg.pipeline.experiment import ExperimentConfig


def removal(config: ExperimentConfig) -> DropModality | None:
    """The configuration's controlled removal (``None``: nothing removed)."""
    if config.drop_modality is None:
        if config.drop_fraction:
            raise ValueError(
                f"drop_fraction {config.drop_fraction} needs a drop_modality"
            )
        return None
    return DropModality(config.drop_modality, config.drop_fraction, seed=config.seed)


def missing_transform(config: ExperimentConfig) -> Compose:
    """Removal, then fill, as the configuration asks; nothing for the defaults."""
    transforms = []
    drop = removal(config)
    if drop is not None:
        transforms.append(drop)
    if config.fill != "zero":
        transforms.append(FillMissing(config.fill))  # refuses an unknown method
    return Compose(transforms)


def lost_entities(original: MMKGPair, drop: DropModality) -> tuple[Tensor, Tensor]:
    """Per side, which entities had the modality in ``original`` and lost it
    (an entity drawn that lacked it already lost nothing)."""
    lost = []
    for side, kg in enumerate((original.source, original.target)):
        had = modality_mask(kg, drop.name)
        drawn = torch.zeros_like(had)
        drawn[drop.dropped(had.numel(), side).to(had.device)] = True
        lost.append(had & drawn)
    return lost[0], lost[1]


def split_ranking(
    emb_s: Tensor,
    emb_t: Tensor,
    links: Tensor,
    subsets: dict[str, Tensor],
    metrics: tuple[SimilarityMetric, ...] = ("cosine", "csls"),
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Hits@1/10 and MRR (%, left to right) of each named subset of ``links``,
    every link ranked once against all targets of ``links`` (also for CSLS,
    whose neighbourhoods are those of the full ranking); ``None`` for an empty
    subset.

    Shapes:
        emb_s: ``(N_s, D)``, emb_t: ``(N_t, D)``, links: ``(2, L)``,
        subsets: ``{name: (L,)}`` bool
    """
    out: dict[str, dict[str, dict[str, float | None]]] = {k: {} for k in subsets}
    for metric in metrics:
        ranks = alignment_ranks(emb_s, emb_t, links, metric=metric)
        for name, subset in subsets.items():
            ranking = RankingMetric()
            ranking.update(ranks[subset])
            scores = ranking.compute()
            del scores["num"]
            out[name][metric] = {
                k: (v if subset.any() else None) for k, v in scores.items()
            }
    return out


def fill_r2(
    original: MMKGPair, pair: MMKGPair, name: str, lost: tuple[Tensor, Tensor]
) -> float | None:
    r""":math:`R^2` of the rows ``pair`` holds for the lost entities (zeros, or
    what a fill put there) against their true features in ``original``:
    :math:`1 - \sum \lVert \hat x - x \rVert^2 / \sum \lVert x - \bar x \rVert^2`
    over both KGs, each around the mean of its own lost rows (their feature
    spaces may differ). ``None`` for no lost rows."""
    key = f"{FEATURE_PREFIX}{name}"
    sse = total = 0.0
    sides = zip((original.source, original.target), (pair.source, pair.target), lost)
    for before, after, mask in sides:
        if not mask.any():
            continue
        truth = before[ENTITY][key][mask].double()
        given = after[ENTITY][key][mask].double()
        sse += float((given - truth).pow(2).sum())
        total += float((truth - truth.mean(dim=0)).pow(2).sum())
    return 1 - sse / total if total > 0 else None


def evaluate_missing(
    model: ALMEA,
    original: MMKGPair,
    pair: MMKGPair,
    links: Tensor,
    drop: DropModality,
) -> dict[str, Any]:
    """What the controlled removal ``drop`` did to a trained run.

    ``original`` is the split pair before the removal, ``pair`` the one the
    model trained on, ``links`` the test links. Returns the lost entities per
    side, the number of ``affected`` test links (source or target lost the
    modality) and of the ``rest``, :func:`split_ranking` of both at the model's
    own imputation setting, the same ``by_presence`` of the modality on each
    side of a link (lost or missing in the data: ``one_side_lacks``,
    ``both_lack``, ``both_have``, with their ``links``), :func:`fill_r2`
    (feature space), and
    ``imputation_r2``: :func:`~almea_pyg.models.imputation_r2` of the model's
    imputer (LSL, or a linear one fitted on ``pair``) on the lost rows against
    ``h^m`` of their true features (``None`` for a model that cannot impute).
    """
    lost = lost_entities(original, drop)
    links = links.to(lost[0].device)
    affected = lost[0][links[0]] | lost[1][links[1]]
    lacks = [
        ~modality_mask(kg, drop.name) | mask
        for kg, mask in zip((original.source, original.target), lost)
    ]
    source_lacks, target_lacks = lacks[0][links[0]], lacks[1][links[1]]
    presence = {
        "one_side_lacks": source_lacks ^ target_lacks,
        "both_lack": source_lacks & target_lacks,
        "both_have": ~(source_lacks | target_lacks),
    }
    emb_s, emb_t = model.embed(pair)
    ranked = split_ranking(
        emb_s, emb_t, links, {"affected": affected, "rest": ~affected, **presence}
    )
    out: dict[str, Any] = {
        "lost_entities": [int(mask.sum()) for mask in lost],
        "links": {"affected": int(affected.sum()), "rest": int((~affected).sum())},
        "affected": ranked["affected"],
        "rest": ranked["rest"],
        "by_presence": {
            "links": {name: int(mask.sum()) for name, mask in presence.items()},
            **{name: ranked[name] for name in presence},
        },
        "fill_r2": fill_r2(original, pair, drop.name, lost),
        "imputation_r2": None,
    }
    if model.can_impute and drop.name in model.in_channels:
        if not model.impute_missing:  # else the embedding above fitted it on pair
            model.fit_imputer(pair)
        inputs = model.inputs(pair)
        inputs.features[drop.name] = model.inputs(original).features[drop.name]
        rows = torch.cat([lost[0], lost[1]]).nonzero().flatten()
        out["imputation_r2"] = imputation_r2(model, inputs, drop.name, rows)
    return out
