"""DS3 acquisition from embeddings: pool → A, D → DS3 → confident representatives."""

from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

import torch
from torch import Tensor

from almea_pyg.metrics.knn import FaissSearch, SearchName
from almea_pyg.metrics.similarity import DEFAULT_CHUNK_SIZE
from almea_pyg.select.blocks import balanced_blocks
from almea_pyg.select.dissimilarity import (
    DEFAULT_SIGMA,
    dissimilarity_matrix,
    diversity_scores,
    pair_embeddings,
)
from almea_pyg.select.ds3 import DS3Result, LamRule, RhoRule, ds3
from almea_pyg.select.pool import CandidatePool, candidate_pool, merge_indices
from almea_pyg.typing import SimilarityMetric

#: How ``A`` is built: Eq. 5 (``"paper"``) or the public code's CSLS distances.
Dissimilarity = Literal["paper", "csls"]
DISSIMILARITIES: tuple[str, ...] = ("paper", "csls")


@dataclass
class DS3Acquisition:
    """Everything :func:`ds3_acquire` computed, for inspection and plots.

    Attributes:
        source_index, target_index, score: The selected pairs, most confident first.
        pool: The candidate pool ``Q_sorted``.
        diversity: The diversity scores ``D`` of the pool, ``(K,)``.
        result: The :class:`~almea_pyg.select.ds3.DS3Result` on the pool (a batch
            of problems when the pool was split into blocks).
        blocks: The pool positions of each block, ``(B, k)``; ``None`` when DS3
            ran on the whole pool.
    """

    source_index: Tensor
    target_index: Tensor
    score: Tensor
    pool: CandidatePool
    diversity: Tensor
    result: Optional[DS3Result]
    blocks: Optional[Tensor] = None


def ds3_acquire(
    source_emb: Tensor,
    target_emb: Tensor,
    labelled: Tensor,
    budget: int,
    *,
    alpha: float = 0.35,
    lam_rule: LamRule = "paper",
    dissimilarity: Dissimilarity = "paper",
    sigma: float = DEFAULT_SIGMA,
    tau: Optional[float] = None,
    prune: Optional[float] = None,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    exclude_source: Optional[Tensor] = None,
    exclude_target: Optional[Tensor] = None,
    normalize: bool = True,
    rho: float = 0.1,
    rho_rule: RhoRule = "adaptive",
    max_iter: int = 1000,
    tol: float = 1e-7,
    block_size: Optional[int] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
    pool: Optional[CandidatePool] = None,
) -> DS3Acquisition:
    """Select up to ``budget`` pairs to label with DS3 (Section 3.3, SPEC §6).

    1. ``Q``: mutual nearest neighbours between the unlabelled (and not excluded)
       entities, most confident first, optionally pruned to a top fraction.
    2. ``A`` (Eq. 5) and ``D`` (Eqs. 6-7) from the (L2-normalised) pair embeddings.
    3. :func:`~almea_pyg.select.ds3.ds3` on ``A`` with row weights ``D``; a pool
       larger than ``block_size`` is split into balanced blocks of nearby pairs
       (:func:`~almea_pyg.select.blocks.balanced_blocks`) solved in one batched
       call, each block with its own λ.
    4. Among the representatives, the most confident pairs (optionally only those
       with score ``≥ τ``), up to ``budget``.

    Args:
        source_emb: Source entity embeddings.
        target_emb: Target entity embeddings.
        labelled: Labelled pairs ``[2, L]``; their entities leave the pool.
        budget: Maximum number of pairs.
        alpha: Sparsification factor of DS3. (default: ``0.35``)
        lam_rule: ``"paper"`` (``λ = α‖A‖_F/√K``), ``"relative"`` (``λ = α λ_max``,
            ``α ≥ 1``: one representative) or ``"code"`` (``λ = α``); see
            :func:`~almea_pyg.select.ds3.ds3`. (default: ``"paper"``)
        dissimilarity: ``"paper"`` (Eq. 5) or ``"csls"`` (the public code's ``A``
            from CSLS distances with ``csls_k``; see
            :func:`~almea_pyg.select.dissimilarity.dissimilarity_matrix`).
            (default: ``"paper"``)
        sigma: Upper end σ of the diversity scores. (default: ``3.0``)
        tau: Confidence threshold on the pair score. (default: ``None``)
        prune: Keep this top fraction of the pool (App. B.6). (default: ``None``)
        metric: ``"cosine"`` or ``"csls"``. (default: ``"cosine"``)
        csls_k: Neighbourhood size of CSLS. (default: ``3``)
        exclude_source: More source indices to leave out (e.g. test entities).
        exclude_target: More target indices to leave out.
        normalize: L2-normalise embeddings before Eqs. 5-6. (default: ``True``)
        rho: Initial ADMM penalty. (default: ``0.1``)
        rho_rule: ``"fixed"`` (the paper's) or ``"adaptive"`` (residual
            balancing). (default: ``"adaptive"``)
        max_iter: ADMM iteration limit. (default: ``1000``)
        tol: ADMM tolerance. (default: ``1e-7``)
        block_size: Split pools larger than this into blocks of at most this many
            pairs (memory ``B k²`` instead of ``K²``); ``None`` (default): one
            problem.
        chunk_size: Rows per similarity / distance block.
        search: The pool's nearest-neighbour search: ``"exact"`` (default),
            ``"faiss"`` or a :class:`~almea_pyg.metrics.FaissSearch`
            (:func:`~almea_pyg.select.pool.candidate_pool`).
        search_kwargs: Arguments of the :class:`~almea_pyg.metrics.FaissSearch`
            that ``search="faiss"`` builds.
        pool: A pool :func:`~almea_pyg.select.pool.candidate_pool` already built
            on these embeddings, e.g. to solve DS3 at several ``alpha`` after one
            search, or to time the search apart; then ``exclude_source``,
            ``exclude_target``, ``metric``, ``prune``, ``search`` and
            ``search_kwargs`` are not used. It must hold no labelled entity.
            (default: ``None``: built here)

    Shapes:
        source_emb: ``(N_s, d)``, target_emb: ``(N_t, d)``, labelled: ``(2, L)``.
    """
    if labelled.dim() != 2 or labelled.size(0) != 2:
        raise ValueError(
            f"ds3_acquire: labelled must be [2, L], got {tuple(labelled.shape)}"
        )
    if dissimilarity not in DISSIMILARITIES:
        raise ValueError(
            f"ds3_acquire: dissimilarity must be one of {DISSIMILARITIES}, "
            f"got {dissimilarity!r}"
        )
    labelled = labelled.to(device=source_emb.device, dtype=torch.long)
    if pool is None:
        pool = candidate_pool(
            source_emb,
            target_emb,
            exclude_source=merge_indices(labelled[0], exclude_source),
            exclude_target=merge_indices(labelled[1], exclude_target),
            metric=metric,
            csls_k=csls_k,
            prune=prune,
            chunk_size=chunk_size,
            search=search,
            search_kwargs=search_kwargs,
        )
    elif (
        torch.isin(pool.source_index, labelled[0]).any()
        or torch.isin(pool.target_index, labelled[1]).any()
    ):
        raise ValueError(
            "ds3_acquire: the pool holds labelled entities; build it with "
            "candidate_pool(..., exclude_source=labelled[0], "
            "exclude_target=labelled[1])"
        )
    h_s, h_t = pair_embeddings(
        source_emb,
        target_emb,
        pool.source_index,
        pool.target_index,
        normalize=normalize,
    )
    l_s, l_t = pair_embeddings(
        source_emb, target_emb, labelled[0], labelled[1], normalize=normalize
    )
    diversity = diversity_scores(h_s, h_t, l_s, l_t, sigma=sigma, chunk_size=chunk_size)
    if len(pool) == 0 or budget == 0:
        empty = pool.source_index[:0]
        return DS3Acquisition(empty, empty, pool.score[:0], pool, diversity, None)
    csls = csls_k if dissimilarity == "csls" else None
    options = dict(
        alpha=alpha,
        lam_rule=lam_rule,
        rho=rho,
        rho_rule=rho_rule,
        max_iter=max_iter,
        tol=tol,
    )
    blocks = None
    if block_size is not None and len(pool) > block_size:
        blocks = balanced_blocks(torch.cat([h_s, h_t], dim=-1), block_size)
        A = torch.stack(
            [
                dissimilarity_matrix(h_s[b], h_t[b], csls_k=csls, chunk_size=chunk_size)
                for b in blocks
            ]
        )
        result = ds3(A, row_weights=diversity[blocks], **options)
        representatives = torch.cat(
            [b[r] for b, r in zip(blocks, result.representatives)]
        )
    else:
        A = dissimilarity_matrix(h_s, h_t, csls_k=csls, chunk_size=chunk_size)
        result = ds3(A, row_weights=diversity, **options)
        representatives = result.representatives
    # The pool is sorted by confidence, so a lower position is a more confident pair.
    chosen = representatives.sort().values
    if tau is not None:
        chosen = chosen[pool.score[chosen] >= tau]
    chosen = chosen[:budget]
    return DS3Acquisition(
        pool.source_index[chosen],
        pool.target_index[chosen],
        pool.score[chosen],
        pool,
        diversity,
        result,
        blocks,
    )
