"""Chunked similarity search between two embedding matrices (cosine and CSLS),
and the top-k alignment candidates it gives.

Nothing here materialises the full ``[N_x, N_y]`` score matrix: scores are produced
``chunk_size`` rows at a time, so memory is ``O(chunk_size * N_y)``.
"""

from collections.abc import Iterator, Sequence
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

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
    if metric not in ("cosine", "csls"):
        raise ValueError(f"metric must be 'cosine' or 'csls', got {metric!r}")
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    if metric == "csls":
        r_y = csls_neighbourhood(y, x, k=csls_k, chunk_size=chunk_size)
        k = min(csls_k, y.size(0))
    for start in range(0, x.size(0), chunk_size):
        scores = x[start : start + chunk_size] @ y.t()
        if metric == "csls":
            r_x = scores.topk(k, dim=1).values.mean(dim=1, keepdim=True)
            scores.mul_(2).sub_(r_x).sub_(r_y[None])
        yield start, scores


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


def mutual_nearest_neighbours(
    x: Tensor,
    y: Tensor,
    *,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs ``(i, j)`` where ``y_j`` is the best match of ``x_i`` and vice versa.

    Returns ``(x_index, y_index, score)``, sorted by decreasing score (most
    confident first). CSLS is symmetric, so one score matrix serves both
    directions. A NaN or inf in ``x`` or ``y`` raises a ``ValueError``.

    Shapes:
        x: ``(N_x, d)``, y: ``(N_y, d)`` -> three tensors of shape ``(K,)``
    """
    check_finite("x", x)
    check_finite("y", y)
    if x.size(0) == 0 or y.size(0) == 0:
        empty = torch.empty(0, dtype=torch.long, device=x.device)
        return empty, empty, x.new_empty(0)
    score_xy, best_y = _topk(x, y, 1, metric, csls_k, chunk_size)
    _, best_x = _topk(y, x, 1, metric, csls_k, chunk_size)
    best_y, score_xy, best_x = best_y[:, 0], score_xy[:, 0], best_x[:, 0]
    x_index = torch.arange(x.size(0), device=x.device)
    mutual = best_x[best_y] == x_index
    x_index, y_index, score = x_index[mutual], best_y[mutual], score_xy[mutual]
    order = score.argsort(descending=True, stable=True)
    return x_index[order], y_index[order], score[order]


class AlignmentCandidates(NamedTuple):
    """Top-k target candidates of source entities, best first."""

    source_index: Tensor  #: ``(n,)``
    target_index: Tensor  #: ``(n, k)``
    score: Tensor  #: ``(n, k)``
    source_ids: list[str]  #: identifiers of the sources, ``n`` (or none)
    target_ids: list[list[str]]  #: identifiers of the candidates, ``n x k`` (or none)


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
) -> AlignmentCandidates:
    """The ``k`` best targets of each of ``sources`` (default: every source)
    among ``targets`` (default: every target), by :func:`topk_similarity`, with
    the entities' identifiers when given (e.g. ``pair.source["entity"].ids``).

    Shapes:
        source_emb: ``(N_s, d)``, target_emb: ``(N_t, d)``, sources: ``(n,)`` ->
        source_index: ``(n,)``, target_index and score: ``(n, k)``
    """
    if sources is None:
        sources = torch.arange(source_emb.size(0), device=source_emb.device)
    if targets is None:
        targets = torch.arange(target_emb.size(0), device=target_emb.device)
    score, best = topk_similarity(
        source_emb[sources],
        target_emb[targets],
        k,
        metric=metric,
        csls_k=csls_k,
        chunk_size=chunk_size,
    )
    target_index = targets[best]
    source_names = [source_ids[i] for i in sources.tolist()] if source_ids else []
    target_names = (
        [[target_ids[j] for j in row] for row in target_index.tolist()]
        if target_ids
        else []
    )
    return AlignmentCandidates(sources, target_index, score, source_names, target_names)
