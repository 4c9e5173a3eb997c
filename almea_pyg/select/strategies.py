"""Acquisition strategies: DS3 (the paper's) and the baselines to compare it with."""

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from almea_pyg.select.acquire import Dissimilarity, DS3Acquisition, ds3_acquire
from almea_pyg.select.base import (
    Selection,
    SelectionContext,
    Strategy,
    register_strategy,
)
from almea_pyg.select.dissimilarity import DEFAULT_SIGMA
from almea_pyg.select.ds3 import LamRule, RhoRule
from almea_pyg.select.pool import candidate_pool


@register_strategy
class DS3Strategy(Strategy):
    """DS3 on the mutual-nearest-neighbour pool (:func:`~almea_pyg.select.ds3_acquire`).

    Args:
        alpha: Sparsification factor. (default: ``0.35``)
        lam_rule: ``"paper"``, ``"relative"`` or ``"code"`` (see
            :func:`~almea_pyg.select.ds3.ds3`). (default: ``"paper"``)
        rho_rule: ``"fixed"`` or ``"adaptive"``. (default: ``"adaptive"``)
        dissimilarity: ``"paper"`` (Eq. 5) or ``"csls"`` (the public code's).
            (default: ``"paper"``)
        sigma: Upper end of the diversity scores. (default: ``3.0``)
        tau: Confidence threshold on the pair score. (default: ``None``)
        prune: Keep this top fraction of the pool. (default: ``None``)
        block_size: Solve pools larger than this in balanced blocks of at most
            this many pairs, in one batched call. (default: ``None``: whole)
        **kwargs: ``metric``, ``csls_k``, ``chunk_size`` and DS3's ``rho``,
            ``max_iter``, ``tol``.

    After :meth:`select`, ``acquisition_`` holds the pool, ``D`` and the DS3 result.
    """

    name = "ds3"

    def __init__(
        self,
        *,
        alpha: float = 0.35,
        lam_rule: LamRule = "paper",
        rho_rule: RhoRule = "adaptive",
        dissimilarity: Dissimilarity = "paper",
        sigma: float = DEFAULT_SIGMA,
        tau: Optional[float] = None,
        prune: Optional[float] = None,
        rho: float = 0.1,
        max_iter: int = 1000,
        tol: float = 1e-7,
        block_size: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.block_size = block_size
        self.alpha, self.sigma, self.tau, self.prune = alpha, sigma, tau, prune
        self.lam_rule, self.rho_rule = lam_rule, rho_rule
        self.dissimilarity = dissimilarity
        self.rho, self.max_iter, self.tol = rho, max_iter, tol
        self.acquisition_: Optional[DS3Acquisition] = None

    def _select(self, ctx: SelectionContext) -> Selection:
        out = ds3_acquire(
            ctx.source_emb,
            ctx.target_emb,
            ctx.labelled,
            ctx.budget,
            alpha=self.alpha,
            lam_rule=self.lam_rule,
            dissimilarity=self.dissimilarity,
            sigma=self.sigma,
            tau=self.tau,
            prune=self.prune,
            metric=self.metric,
            csls_k=self.csls_k,
            exclude_source=_excluded(ctx.source_candidates, ctx.source_emb.size(0)),
            exclude_target=_excluded(ctx.target_candidates, ctx.target_emb.size(0)),
            rho=self.rho,
            rho_rule=self.rho_rule,
            max_iter=self.max_iter,
            tol=self.tol,
            block_size=self.block_size,
            chunk_size=self.chunk_size,
        )
        self.acquisition_ = out
        self.summary_ = {"pool": len(out.pool), "representatives": 0}
        if out.result is not None:
            result = out.result
            representatives = result.representatives
            if isinstance(representatives, list):  # a batch of blocks
                representatives = torch.cat(representatives)
            self.summary_.update(
                representatives=int(representatives.numel()),
                iterations=int(result.num_iterations.max()),
                converged=bool(result.converged.all()),
            )
            if out.blocks is not None:
                self.summary_["blocks"] = out.blocks.size(0)
        return Selection(out.source_index, out.target_index, out.score)

    def extra_repr(self) -> str:
        rule = "" if self.lam_rule == "paper" else f", lam_rule={self.lam_rule!r}"
        return f"alpha={self.alpha}{rule}, sigma={self.sigma}, {super().extra_repr()}"


def _excluded(candidates: Tensor, num: int) -> Tensor:
    mask = torch.ones(num, dtype=torch.bool, device=candidates.device)
    mask[candidates] = False
    return mask.nonzero().view(-1)


@register_strategy
class RandomStrategy(Strategy):
    """Uniformly random unlabelled sources (uses ``generator``), best-matched: a
    random entity question."""

    name = "random"

    def _select(self, ctx: SelectionContext) -> Selection:
        n = ctx.source_candidates.numel()
        rows = torch.randperm(n, generator=ctx.generator)[: ctx.budget]
        return self._pick(ctx, rows.to(ctx.source_candidates.device))


@register_strategy
class RandomPairStrategy(Strategy):
    """Uniformly random pairs of the mutual-nearest-neighbour pool that DS3 selects
    from (uses ``generator``): DS3's baseline without its selection."""

    name = "random_pair"

    def _select(self, ctx: SelectionContext) -> Selection:
        pool = candidate_pool(
            ctx.source_emb,
            ctx.target_emb,
            exclude_source=_excluded(ctx.source_candidates, ctx.source_emb.size(0)),
            exclude_target=_excluded(ctx.target_candidates, ctx.target_emb.size(0)),
            metric=self.metric,
            csls_k=self.csls_k,
            chunk_size=self.chunk_size,
        )
        rows = torch.randperm(len(pool), generator=ctx.generator)[: ctx.budget]
        rows = rows.to(pool.source_index.device)
        return Selection(
            pool.source_index[rows], pool.target_index[rows], pool.score[rows]
        )


@register_strategy
class UncertaintyStrategy(Strategy):
    """Sources whose best and second-best matches are closest (smallest margin).

    With a single target candidate every margin is zero (ties by index).
    """

    name = "uncertainty"

    def _select(self, ctx: SelectionContext) -> Selection:
        scores, targets = self.best_matches(ctx, k=2)
        margin = scores[:, 0] - scores[:, 1] if scores.size(1) > 1 else scores[:, 0] * 0
        rows = margin.argsort(stable=True)[: ctx.budget]
        return Selection(ctx.source_candidates[rows], targets[rows, 0], scores[rows, 0])


@register_strategy
class DegreeStrategy(Strategy):
    """Highest-degree sources (plus the degree of their best match, if given).

    Needs ``source_degree``; ``target_degree`` is optional.
    """

    name = "degree"

    def _select(self, ctx: SelectionContext) -> Selection:
        if ctx.source_degree is None:
            raise ValueError("degree strategy: source_degree is required")
        scores, targets = self.best_matches(ctx)
        degree = ctx.source_degree.to(scores.device)[ctx.source_candidates].float()
        if ctx.target_degree is not None:
            degree = degree + ctx.target_degree.to(scores.device)[targets[:, 0]].float()
        rows = degree.argsort(descending=True, stable=True)[: ctx.budget]
        return Selection(ctx.source_candidates[rows], targets[rows, 0], scores[rows, 0])


@register_strategy
class CoreSetStrategy(Strategy):
    """k-centre greedy (Sener & Savarese, 2018) on pair embeddings ``[h_S, h_T]``.

    The labelled pairs are the initial centres; each step takes the candidate pair
    farthest from every centre. Without labelled pairs, it starts from the pair
    farthest from the candidates' mean.
    """

    name = "coreset"

    def _select(self, ctx: SelectionContext) -> Selection:
        scores, targets = self.best_matches(ctx)
        points = _pair_points(
            ctx.source_emb, ctx.target_emb, ctx.source_candidates, targets[:, 0]
        )
        if ctx.labelled.size(1) > 0:
            centres = _pair_points(ctx.source_emb, ctx.target_emb, *ctx.labelled)
            nearest = _min_sq_dist(points, centres, self.chunk_size)
        else:
            nearest = (points - points.mean(0)).pow(2).sum(-1)
        rows = []
        for _ in range(min(ctx.budget, points.size(0))):
            row = int(nearest.argmax())
            rows.append(row)
            nearest = torch.minimum(nearest, (points - points[row]).pow(2).sum(-1))
        rows_t = torch.tensor(rows, dtype=torch.long, device=points.device)
        return Selection(
            ctx.source_candidates[rows_t], targets[rows_t, 0], scores[rows_t, 0]
        )


def _pair_points(
    source_emb: Tensor, target_emb: Tensor, src: Tensor, tgt: Tensor
) -> Tensor:
    return torch.cat(
        [F.normalize(source_emb[src], dim=-1), F.normalize(target_emb[tgt], dim=-1)], -1
    )


def _min_sq_dist(points: Tensor, centres: Tensor, chunk_size: int) -> Tensor:
    out = points.new_empty(points.size(0))
    for start in range(0, points.size(0), chunk_size):
        block = torch.cdist(points[start : start + chunk_size], centres)
        out[start : start + chunk_size] = block.amin(-1).pow(2)
    return out
