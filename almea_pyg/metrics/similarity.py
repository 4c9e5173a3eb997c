"""Chunked similarity search between two embedding matrices (cosine and CSLS),
and the top-k alignment candidates it gives.

Nothing here materialises the full ``[N_x, N_y]`` score matrix: scores are produced
``chunk_size`` rows at a time, so memory is ``O(chunk_size * N_y)``. The
candidates can also come from faiss top-k lists (``search="faiss"``, see
:mod:`almea_pyg.metrics.knn`), CSLS then re-scoring each list.
"""

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from almea_pyg.metrics.knn import FaissSearch, SearchName, resolve_search
from almea_pyg.typing import SimilarityMetric

DEFAULT_CHUNK_SIZE = 1024


def check_finite(name: str, x: Tensor, index: Optional[Tensor] = None) -> None:
    """Raise a ``ValueError`` naming ``name`` if a row of ``x`` holds a NaN or inf.

    A NaN or inf makes the sum non-finite, so the all-finite case costs one
    reduction; only then are the rows inspected.

    Args:
        name: The tensor's name in the message.
        x: The rows to check.
        index: The row numbers to report for the rows of ``x`` (when ``x`` is
            ``emb[index]``). (default: ``None``, the positions in ``x``)

    Shapes:
        x: ``(N, d)``, index: ``(N,)``
    """
    if bool(torch.isfinite(x.sum())):
        return
    bad = (~torch.isfinite(x)).reshape(x.size(0), -1).any(dim=1).nonzero().view(-1)
    if bad.numel() == 0:  # the sum overflowed; every value is finite
        return
    rows = bad if index is None else index.to(bad.device)[bad]
    noun = "row" if rows.numel() == 1 else "rows"
    raise ValueError(
        f"{name} has {rows.numel()} non-finite {noun} (first: row "
        f"{int(rows.min())}); the model diverged?"
    )


def csls_neighbourhood(
    x: Tensor, y: Tensor, *, k: int = 3, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Tensor:
    """Mean cosine similarity of each row of ``x`` to its ``k`` nearest rows of ``y``.

    This is the ``r`` term of CSLS (Lample et al., 2018).

    Shapes:
        x: ``(N_x, d)``, y: ``(N_y, d)`` -> ``(N_x,)``
    """
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    k = min(k, y.size(0))
    out = x.new_empty(x.size(0))
    for start in range(0, x.size(0), chunk_size):
        sim = x[start : start + chunk_size] @ y.t()
        out[start : start + chunk_size] = sim.topk(k, dim=1).values.mean(dim=1)
    return out


def similarity_chunks(
    x: Tensor,
    y: Tensor,
    *,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, scores)`` blocks of the ``x``-by-``y`` similarity matrix.

    ``scores`` is ``(rows, N_y)`` for the rows ``start:start + rows`` of ``x``.
    CSLS scores are ``2 cos(x_i, y_j) - r_y(x_i) - r_x(y_j)``; the ``x`` side's
    neighbourhood term comes from each block itself, so CSLS costs two passes
    over the pairs (one for the ``y`` side's term), not three. A NaN or inf in
    ``x`` or ``y`` raises a ``ValueError``.
    """
    check_finite("x", x)
    check_finite("y", y)
    yield from _score_chunks(x, y, metric, csls_k, chunk_size)


def _score_chunks(
    x: Tensor, y: Tensor, metric: SimilarityMetric, csls_k: int, chunk_size: int
) -> Iterator[tuple[int, Tensor]]:
    """:func:`similarity_chunks` for inputs the caller has checked."""
    _check_metric(metric)
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    if metric == "csls":
        r_y = csls_neighbourhood(y, x, k=csls_k, chunk_size=chunk_size)
        k = min(csls_k, y.size(0))
    for start in range(0, x.size(0), chunk_size):
        scores = x[start : start + chunk_size] @ y.t()
        if metric == "csls":
            r_x = scores.topk(k, dim=1).values.mean(dim=1)
            _csls_(scores, r_x, r_y[None])
        yield start, scores


def _check_metric(metric: str) -> None:
    if metric not in ("cosine", "csls"):
        raise ValueError(f"metric must be 'cosine' or 'csls', got {metric!r}")


def _csls_(cos: Tensor, r_x: Tensor, r_y: Tensor) -> Tensor:
    """``2 cos - r_x - r_y`` in place, ``r_x`` per row of ``cos``, ``r_y`` broadcast."""
    return cos.mul_(2).sub_(r_x[:, None]).sub_(r_y)


def topk_similarity(
    x: Tensor,
    y: Tensor,
    k: int = 1,
    *,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor]:
    """The ``k`` most similar rows of ``y`` for each row of ``x``, best first.

    A NaN or inf in ``x`` or ``y`` raises a ``ValueError``.

    Shapes:
        x: ``(N_x, d)``, y: ``(N_y, d)`` -> values, indices: ``(N_x, k)``
    """
    check_finite("x", x)
    check_finite("y", y)
    return _topk(x, y, k, metric, csls_k, chunk_size)


def _topk(
    x: Tensor,
    y: Tensor,
    k: int,
    metric: SimilarityMetric,
    csls_k: int,
    chunk_size: int,
) -> tuple[Tensor, Tensor]:
    """:func:`topk_similarity` for inputs the caller has checked."""
    k = min(k, y.size(0))
    values = x.new_empty(x.size(0), k)
    indices = torch.empty(x.size(0), k, dtype=torch.long, device=x.device)
    for start, scores in _score_chunks(x, y, metric, csls_k, chunk_size):
        top = scores.topk(k, dim=1)
        values[start : start + scores.size(0)] = top.values
        indices[start : start + scores.size(0)] = top.indices
    return values, indices


class TopKLists(NamedTuple):
    """Top-k lists of a faiss search (:func:`_list_topk`)."""

    score: Tensor  #: ``(N_x, k)``, best first; ``-inf`` where none was found
    index: Tensor  #: ``(N_x, k)`` rows of ``y``; ``-1`` where none was found
    #: ``(N_x,)`` the highest score a row of ``y`` outside the list can have (with
    #: a flat index; ``-inf`` when the list holds every row), or ``None``
    bound: Optional[Tensor]
    used: dict[str, Any]  #: the indexes and the lists' length


def _list_topk(
    x: Tensor,
    y: Tensor,
    k: int,
    metric: SimilarityMetric,
    csls_k: int,
    search: FaissSearch,
    *,
    bound: bool = False,
) -> TopKLists:
    """:func:`_topk` from the top-k lists of ``search``, with what it used: the
    index over ``y`` (:meth:`~almea_pyg.metrics.knn.FaissSearch.describe`), the
    lists' length and, for CSLS, the index over ``x``.

    Cosine: the ``k`` nearest rows of ``y``. CSLS: the ``max(k, list_size,
    csls_k)`` nearest by cosine, re-scored ``2 cos(x_i, y_j) - r_y(x_i) -
    r_x(y_j)``, with ``r_y(x_i)`` the mean of the first ``csls_k`` cosines of the
    list of ``x_i`` and ``r_x(y_j)`` that of a search of ``x`` for each ``y_j``.
    A row of ``y`` outside the list of ``x_i`` has a cosine of at most the list's
    last, so its CSLS is at most ``2 cos_last - r_y(x_i) - min_j r_x(y_j)``
    (:attr:`TopKLists.bound`, with ``bound=True``; it costs a search of ``x``
    for every row of ``y``, not only the listed ones): a listed score at least
    as high is ranked exactly.
    """
    _check_metric(metric)
    size = k if metric == "cosine" else max(k, search.list_size, csls_k)
    cos, index = search.knn(x, y, size)
    used = {"backend": "faiss", **search.describe(y.size(0))}
    used["list_size"] = cos.size(1)
    if cos.size(1) == y.size(0) or cos.size(1) == 0:
        last = cos.new_full((cos.size(0),), float("-inf"))
    else:
        last = cos[:, -1].clone()  # the CSLS scores overwrite ``cos``
    if metric == "cosine":
        return TopKLists(cos, index, last if bound else None, used)
    r_x = _mean_found(cos[:, :csls_k])
    listed, column = index.clamp(min=0).unique(return_inverse=True)
    if bound:
        r_y_all = _mean_found(search.knn(y, x, csls_k)[0])
        r_y, highest = r_y_all[listed], 2 * last - r_x - r_y_all.min()
    else:
        r_y, highest = _mean_found(search.knn(y[listed], x, csls_k)[0]), None
    used["source_index"] = search.describe(x.size(0))
    scores = _csls_(cos, r_x, r_y[column]).masked_fill_(index < 0, float("-inf"))
    top = scores.topk(min(k, scores.size(1)), dim=1)
    return TopKLists(top.values, index.gather(1, top.indices), highest, used)


def _mean_found(values: Tensor) -> Tensor:
    """Row means of the finite ``values`` (the neighbours a search found); 0, no
    hubness term, for a row that found none (not NaN, which would compare as
    no better than any score)."""
    found = torch.isfinite(values)
    total = values.where(found, values.new_zeros(())).sum(dim=1)
    return total / found.sum(dim=1).clamp(min=1)


def mutual_nearest_neighbours(
    x: Tensor,
    y: Tensor,
    *,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs ``(i, j)`` where ``y_j`` is the best match of ``x_i`` and vice versa.

    Returns ``(x_index, y_index, score)``, sorted by decreasing score (most
    confident first). A NaN or inf in ``x`` or ``y`` raises a ``ValueError``.
    ``search="faiss"`` takes each side's best match from faiss top-k lists
    (:func:`alignment_candidates` says how CSLS re-scores them); with a flat
    index, cosine gives the exact pairs.

    Shapes:
        x: ``(N_x, d)``, y: ``(N_y, d)`` -> three tensors of shape ``(K,)``
    """
    check_finite("x", x)
    check_finite("y", y)
    if x.size(0) == 0 or y.size(0) == 0:
        empty = torch.empty(0, dtype=torch.long, device=x.device)
        return empty, empty, x.new_empty(0)
    searcher = resolve_search(search, search_kwargs)
    if searcher is None:
        score_xy, best_y, best_x = _best_both_ways(x, y, metric, csls_k, chunk_size)
    else:
        score_xy, best_y, _, _ = _list_topk(x, y, 1, metric, csls_k, searcher)
        best_x = _list_topk(y, x, 1, metric, csls_k, searcher).index
        best_y, score_xy, best_x = best_y[:, 0], score_xy[:, 0], best_x[:, 0]
    x_index = torch.arange(x.size(0), device=x.device)
    # ``-1``: an approximate index found no match
    mutual = (best_y >= 0) & (best_x[best_y.clamp(min=0)] == x_index)
    x_index, y_index, score = x_index[mutual], best_y[mutual], score_xy[mutual]
    order = score.argsort(descending=True, stable=True)
    return x_index[order], y_index[order], score[order]


def _best_both_ways(
    x: Tensor, y: Tensor, metric: SimilarityMetric, csls_k: int, chunk_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The best row of ``y`` for each row of ``x`` (score and index) and the best
    row of ``x`` for each row of ``y``, from one pass over the score blocks: a
    block's row maxima are its sources' matches, and its column maxima update a
    running best source per target. CSLS is symmetric, so its column maxima are
    the targets' CSLS matches; the two directions cost one pass (two for CSLS's
    neighbourhood term) instead of two (four).

    Shapes:
        x: ``(N_x, d)``, y: ``(N_y, d)`` -> ``(N_x,)``, ``(N_x,)``, ``(N_y,)``
    """
    score_xy = x.new_empty(x.size(0))
    best_y = torch.empty(x.size(0), dtype=torch.long, device=x.device)
    score_yx = y.new_full((y.size(0),), float("-inf"))
    best_x = torch.zeros(y.size(0), dtype=torch.long, device=y.device)
    for start, scores in _score_chunks(x, y, metric, csls_k, chunk_size):
        rows = slice(start, start + scores.size(0))
        torch.max(scores, dim=1, out=(score_xy[rows], best_y[rows]))
        column, row = scores.max(dim=0)
        better = column > score_yx
        score_yx = torch.where(better, column, score_yx)
        best_x = torch.where(better, row + start, best_x)
    return score_xy, best_y, best_x


class AlignmentCandidates(NamedTuple):
    """Top-k target candidates of source entities, best first."""

    source_index: Tensor  #: ``(n,)``
    target_index: Tensor  #: ``(n, k)``
    score: Tensor  #: ``(n, k)``
    source_ids: list[str]  #: identifiers of the sources, ``n`` (or none)
    #: identifiers of the candidates, ``n x k`` (or none; a row misses those of ``-1``)
    target_ids: list[list[str]]
    #: the search used and its parameters, e.g. ``{"backend": "exact"}``
    search: dict[str, Any]


def alignment_candidates(
    source_emb: Tensor,
    target_emb: Tensor,
    k: int = 10,
    *,
    sources: Optional[Tensor] = None,
    targets: Optional[Tensor] = None,
    source_ids: Optional[Sequence[str]] = None,
    target_ids: Optional[Sequence[str]] = None,
    metric: SimilarityMetric = "csls",
    csls_k: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
) -> AlignmentCandidates:
    """The ``k`` best targets of each of ``sources`` (default: every source)
    among ``targets`` (default: every target), with the entities' identifiers
    when given (e.g. ``pair.source["entity"].ids``).

    ``search="exact"`` scores every pair (:func:`topk_similarity`);
    ``search="faiss"`` takes each source's nearest targets from a faiss index
    (:class:`~almea_pyg.metrics.knn.FaissSearch`, built with ``search_kwargs``),
    CSLS re-scoring a list of ``list_size`` of them; its neighbourhood terms
    come from the sources and targets given, as in the exact search. An
    approximate index (HNSW, IVF) may miss a true neighbour, and may return fewer
    than ``k`` targets: index ``-1``, score ``-inf``.
    :attr:`AlignmentCandidates.search` says which search ran, with its parameters.

    Shapes:
        source_emb: ``(N_s, d)``, target_emb: ``(N_t, d)``, sources: ``(n,)`` ->
        source_index: ``(n,)``, target_index and score: ``(n, k)``
    """
    searcher = resolve_search(search, search_kwargs)
    if sources is None:
        sources = torch.arange(source_emb.size(0), device=source_emb.device)
    if targets is None:
        targets = torch.arange(target_emb.size(0), device=target_emb.device)
    x, y = source_emb[sources], target_emb[targets]
    check_finite("x", x)
    check_finite("y", y)
    if searcher is None:
        score, best = _topk(x, y, k, metric, csls_k, chunk_size)
        used = {"backend": "exact"}
    else:
        score, best, _, used = _list_topk(x, y, k, metric, csls_k, searcher)
    target_index = torch.where(best >= 0, targets[best.clamp(min=0)], -1)
    source_names = [source_ids[i] for i in sources.tolist()] if source_ids else []
    target_names = (
        [[target_ids[j] for j in row if j >= 0] for row in target_index.tolist()]
        if target_ids
        else []
    )
    return AlignmentCandidates(
        sources, target_index, score, source_names, target_names, used
    )
