"""Ranking metrics for entity alignment: ranks, Hits@k and MRR.

The protocol of MCLEA/MEAformer/ALMEA (SPEC section 5): every test source entity
ranks all test target entities by cosine or CSLS similarity of the joint
embeddings; Hits@k is the share of sources whose counterpart is ranked within the
first ``k``, MRR the mean reciprocal rank. Ranks are left-to-right (source to
target); for the other direction swap the sides and flip the links:
``alignment_ranks(x_tgt, x_src, links.flip(0))``.

By default every candidate is scored (exact). With ``search="faiss"`` each source
ranks only the top-k list a faiss index gives it (:mod:`almea_pyg.metrics.knn`).
A link whose rank the list cannot establish gets rank ``inf`` (reciprocal rank
0): its true target is outside the list or, with CSLS, scores below what a
target outside the list could score. With a flat (exact) index every other
rank is the exact one, so Hits@k up to the list's length and MRR are lower
bounds of the exact search's; an approximate index (HNSW, IVF) may miss a
closer target, and its ranks can err either way.
"""

from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor

from almea_pyg.metrics.knn import FaissSearch, SearchName, resolve_search
from almea_pyg.metrics.similarity import (
    DEFAULT_CHUNK_SIZE,
    _list_topk,
    _score_chunks,
    check_finite,
)
from almea_pyg.typing import SimilarityMetric


def _check_ranks(ranks: Tensor) -> Tensor:
    ranks = torch.as_tensor(ranks).reshape(-1)
    if ranks.numel() > 0 and ranks.min() < 1:
        raise ValueError("ranks must be 1-based (every rank >= 1)")
    return ranks


def hits_at_k(ranks: Tensor, k: int) -> float:
    """Share of 1-based ``ranks`` that are at most ``k`` (a fraction in ``[0, 1]``).

    Returns ``nan`` for empty ``ranks``. A rank may be ``inf`` (beyond a top-k list).

    Shapes:
        ranks: ``(L,)`` -> float
    """
    ranks = _check_ranks(ranks)
    if ranks.numel() == 0:
        return float("nan")
    return (ranks <= k).double().mean().item()


def mean_reciprocal_rank(ranks: Tensor) -> float:
    """Mean of ``1 / rank`` over 1-based ``ranks`` (a fraction in ``[0, 1]``).

    Returns ``nan`` for empty ``ranks``. A rank may be ``inf`` (beyond a top-k
    list): its reciprocal is 0.

    Shapes:
        ranks: ``(L,)`` -> float
    """
    ranks = _check_ranks(ranks)
    if ranks.numel() == 0:
        return float("nan")
    return ranks.double().reciprocal().mean().item()


def alignment_ranks(
    x_src: Tensor,
    x_tgt: Tensor,
    links: Tensor,
    *,
    candidates: Optional[Tensor] = None,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
) -> Tensor:
    """1-based rank of the true target of each link among the candidate targets.

    For each link ``(s, t)``, the candidate targets are scored by their similarity
    to ``x_src[s]`` and ``t`` gets rank ``1 + #{candidates with a strictly higher
    score}`` (ties are resolved in the link's favour, so a tie never costs rank).
    By default the candidates are the distinct targets of ``links`` (every test
    source against all test targets, the standard MMEA protocol). With
    ``metric="csls"`` the CSLS neighbourhoods are computed between the distinct
    sources of ``links`` and the candidates, as in MCLEA's evaluation. Scores are
    computed ``chunk_size`` sources at a time, never the full matrix. A NaN or inf
    in a row of ``x_src`` or ``x_tgt`` that is scored (a source of ``links`` or a
    candidate) raises a ``ValueError`` naming the tensor and the row.

    With ``search="faiss"`` each distinct source ranks the ``list_size`` candidates
    of its faiss top-k list (CSLS re-scoring the cosine list, see
    :func:`~almea_pyg.metrics.alignment_candidates`); a link the list cannot
    rank (see the module's docstring) gets rank ``inf``, and the ranks are
    floats.

    Args:
        x_src: Source entity embeddings.
        x_tgt: Target entity embeddings.
        links: ``(source index, target index)`` pairs into ``x_src``/``x_tgt``.
        candidates: Indices of the candidate targets (default: the targets of
            ``links``). Must contain every target of ``links``; duplicates are
            ignored.
        metric: ``"cosine"`` or ``"csls"``.
        csls_k: Neighbourhood size of CSLS.
        chunk_size: Number of sources (links with ``search="faiss"``) scored at
            once.
        search: ``"exact"``, ``"faiss"`` or a
            :class:`~almea_pyg.metrics.knn.FaissSearch`.
        search_kwargs: Arguments of the :class:`~almea_pyg.metrics.knn.FaissSearch`
            that ``search="faiss"`` builds.

    Shapes:
        x_src: ``(N_S, d)``, x_tgt: ``(N_T, d)``, links: ``(2, L)``,
        candidates: ``(C,)`` -> ``(L,)`` long (float with ``search="faiss"``)
    """
    searcher = resolve_search(search, search_kwargs)
    return _ranks(
        x_src, x_tgt, links, candidates, metric, csls_k, chunk_size, searcher
    )[0]


@torch.no_grad()
def _ranks(
    x_src: Tensor,
    x_tgt: Tensor,
    links: Tensor,
    candidates: Optional[Tensor],
    metric: SimilarityMetric,
    csls_k: int,
    chunk_size: int,
    search: Optional[FaissSearch],
) -> tuple[Tensor, dict[str, Any]]:
    """:func:`alignment_ranks` and the search it used (``{"backend": "exact"}`` or
    the faiss search's parameters)."""
    used: dict[str, Any] = {"backend": "exact" if search is None else "faiss"}
    if links.dim() != 2 or links.size(0) != 2:
        raise ValueError(f"links must have shape (2, L), got {tuple(links.shape)}")
    device = x_src.device
    links = links.to(device)
    if links.size(1) == 0:
        return torch.empty(0, dtype=torch.long, device=device), used

    candidates = links[1] if candidates is None else candidates.to(device)
    candidates = torch.unique(candidates)  # sorted
    column = torch.searchsorted(candidates, links[1]).clamp(max=candidates.numel() - 1)
    if candidates.numel() == 0 or not bool((candidates[column] == links[1]).all()):
        raise ValueError("every target of links must be among the candidates")

    # One query row per distinct source; process the links sorted by that row.
    sources, row = torch.unique(links[0], return_inverse=True)
    order = row.argsort()
    row, column = row[order], column[order]

    queries, keys = x_src[sources], x_tgt[candidates]
    check_finite("x_src", queries, sources)
    check_finite("x_tgt", keys, candidates)
    if search is not None:
        return _list_ranks(
            queries, keys, row, column, order, metric, csls_k, search, chunk_size
        )

    ranks = torch.empty(links.size(1), dtype=torch.long, device=device)
    for start, scores in _score_chunks(queries, keys, metric, csls_k, chunk_size):
        begin, end = torch.searchsorted(
            row, torch.tensor([start, start + scores.size(0)], device=device)
        ).tolist()
        link_scores = scores[row[begin:end] - start]
        true_score = link_scores.gather(1, column[begin:end, None])
        ranks[order[begin:end]] = (link_scores > true_score).sum(dim=1) + 1
    return ranks, used


def _list_ranks(
    queries: Tensor,
    keys: Tensor,
    row: Tensor,
    column: Tensor,
    order: Tensor,
    metric: SimilarityMetric,
    csls_k: int,
    search: FaissSearch,
    chunk_size: int,
) -> tuple[Tensor, dict[str, Any]]:
    """:func:`_ranks` within the top-k lists of ``search``: link ``i`` (at
    position ``order[i]``) asks for key ``column[i]`` in the list of query
    ``row[i]``; rank ``inf`` where it is not there or scores below what a key
    outside the list could (:attr:`~almea_pyg.metrics.similarity.TopKLists.bound`).
    Links go ``chunk_size`` at a time, so memory is ``O(chunk_size *
    list_size)``."""
    k = search.list_size
    scores, listed, bound, used = _list_topk(
        queries, keys, k, metric, csls_k, search, bound=True
    )
    ranks = torch.empty(row.numel(), dtype=torch.float64, device=queries.device)
    for start in range(0, row.numel(), chunk_size):
        link_row, link_column = (
            row[start : start + chunk_size],
            column[start : start + chunk_size],
        )
        link_scores = scores[link_row]
        hit = listed[link_row] == link_column[:, None]
        true_score = link_scores.masked_fill(~hit, float("-inf")).amax(dim=1)
        rank = (link_scores > true_score[:, None]).sum(dim=1).double() + 1
        ranked = hit.any(dim=1) & (true_score >= bound[link_row])
        ranks[order[start : start + chunk_size]] = rank.masked_fill(
            ~ranked, float("inf")
        )
    return ranks, used


class RankingMetric:
    """Stateful Hits@k and MRR over ranks accumulated chunk by chunk.

    Only running sums are kept, so any number of ranks can be fed.

    Args:
        ks: The cut-offs ``k`` of Hits@k (default ``(1, 10)``).

    Example:
        >>> metric = RankingMetric()
        >>> metric.update(torch.tensor([1, 3]))
        >>> metric.update(torch.tensor([12]))
        >>> round(metric.compute()["hits@1"], 2)
        33.33
    """

    def __init__(self, *, ks: Sequence[int] = (1, 10)) -> None:
        self.ks = tuple(int(k) for k in ks)
        self.reset()

    def reset(self) -> None:
        """Forget every rank seen so far."""
        self.num = 0
        self._hits = [0] * len(self.ks)
        self._reciprocal_sum = 0.0

    def update(self, ranks: Tensor) -> None:
        """Add a batch of 1-based ranks.

        Shapes:
            ranks: ``(L,)``
        """
        ranks = _check_ranks(ranks)
        self.num += ranks.numel()
        for i, k in enumerate(self.ks):
            self._hits[i] += int((ranks <= k).sum())
        self._reciprocal_sum += ranks.double().reciprocal().sum().item()

    def compute(self) -> dict[str, float]:
        """``{"hits@k": %, ..., "mrr": %, "num": count}``; ``nan`` values if empty."""
        scale = 100.0 / self.num if self.num else float("nan")
        out = {f"hits@{k}": hits * scale for k, hits in zip(self.ks, self._hits)}
        out["mrr"] = self._reciprocal_sum * scale
        out["num"] = self.num
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(ks={self.ks}, num={self.num})"


def evaluate_alignment(
    x_src: Tensor,
    x_tgt: Tensor,
    links: Tensor,
    *,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    ks: Sequence[int] = (1, 10),
    candidates: Optional[Tensor] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Hits@k and MRR (in %) of the source-to-target ranking of ``links``.

    See :func:`alignment_ranks` for the protocol and the arguments. With
    ``search="faiss"`` the result adds ``"search"``: the index, its ``nprobe``,
    the lists' length ``list_size`` (at least ``max(ks)``) and ``"unranked"``,
    the links the lists could not rank (see :func:`alignment_ranks`), counted as
    misses (reciprocal rank 0). The exact default adds nothing, so that
    the result stays a flat dict of numbers (the trainer logs it per epoch).

    Shapes:
        x_src: ``(N_S, d)``, x_tgt: ``(N_T, d)``, links: ``(2, L)``
    """
    searcher = resolve_search(search, search_kwargs)
    if searcher is not None and searcher.list_size < max(ks):
        raise ValueError(
            f"list_size {searcher.list_size} of the faiss search is below "
            f"max(ks) = {max(ks)}: Hits@{max(ks)} would be truncated"
        )
    ranks, used = _ranks(
        x_src, x_tgt, links, candidates, metric, csls_k, chunk_size, searcher
    )
    ranking = RankingMetric(ks=ks)
    ranking.update(ranks)
    out: dict[str, Any] = ranking.compute()
    del out["num"]
    if searcher is not None:
        out["search"] = {**used, "unranked": int(torch.isinf(ranks).sum())}
    return out


def evaluate_directions(
    x_src: Tensor,
    x_tgt: Tensor,
    links: Tensor,
    *,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    ks: Sequence[int] = (1, 10),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
) -> dict[str, dict[str, Any]]:
    """Hits@k and MRR (%) left-to-right, right-to-left and their mean.

    ``"l2r"`` ranks the test targets for each test source
    (:func:`evaluate_alignment`), ``"r2l"`` the test sources for each test target
    (the direction the paper's public code reports), ``"mean"`` averages the two
    (the metrics only; with ``search="faiss"`` each direction states its search).

    Shapes:
        x_src: ``(N_S, d)``, x_tgt: ``(N_T, d)``, links: ``(2, L)``
    """
    options = dict(metric=metric, csls_k=csls_k, ks=ks, chunk_size=chunk_size)
    options["search"] = resolve_search(search, search_kwargs) or "exact"
    l2r = evaluate_alignment(x_src, x_tgt, links, **options)
    r2l = evaluate_alignment(x_tgt, x_src, links.flip(0), **options)
    mean = {key: (l2r[key] + r2l[key]) / 2 for key in l2r if key != "search"}
    return {"l2r": l2r, "r2l": r2l, "mean": mean}
