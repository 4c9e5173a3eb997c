"""The candidate pool ``Q``: mutual nearest neighbours of unlabelled entities (Eq 3)."""

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor

from almea_pyg.metrics.knn import FaissSearch, SearchName
from almea_pyg.metrics.similarity import (
    DEFAULT_CHUNK_SIZE,
    check_finite,
    mutual_nearest_neighbours,
)
from almea_pyg.typing import SimilarityMetric


@dataclass
class CandidatePool:
    """Candidate pairs ``(source_index[k], target_index[k])``, most confident first.

    ``score`` is the pair's similarity (cosine or CSLS), in decreasing order.
    """

    source_index: Tensor
    target_index: Tensor
    score: Tensor

    def __len__(self) -> int:
        return self.source_index.numel()


def keep_mask(num: int, exclude: Optional[Tensor], device: torch.device) -> Tensor:
    """A bool mask over ``num`` entities, ``False`` at the indices in ``exclude``."""
    mask = torch.ones(num, dtype=torch.bool, device=device)
    if exclude is None:
        return mask
    exclude = torch.as_tensor(exclude, device=device).long().reshape(-1)
    if exclude.numel() > 0:
        if bool((exclude < 0).any()) or bool((exclude >= num).any()):
            raise ValueError(f"excluded index out of range for {num} entities")
        mask[exclude] = False
    return mask


def merge_indices(first: Tensor, extra: Optional[Tensor]) -> Tensor:
    """``first`` followed by ``extra`` (any index-like, on ``first``'s device)."""
    if extra is None:
        return first
    extra = torch.as_tensor(extra, device=first.device).long().reshape(-1)
    return torch.cat([first, extra])


def candidate_pool(
    source_emb: Tensor,
    target_emb: Tensor,
    *,
    exclude_source: Optional[Tensor] = None,
    exclude_target: Optional[Tensor] = None,
    metric: SimilarityMetric = "cosine",
    csls_k: int = 3,
    prune: Optional[float] = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    search: Union[SearchName, FaissSearch] = "exact",
    search_kwargs: Optional[dict[str, Any]] = None,
) -> CandidatePool:
    """Mutual nearest neighbours among the entities not excluded (Eq. 3).

    Entities in ``exclude_source`` / ``exclude_target`` (labelled entities, and test
    entities under a no-leak protocol) are removed before the search, so they can
    neither be candidates nor be anyone's nearest neighbour. The search is chunked
    (:func:`~almea_pyg.metrics.similarity.mutual_nearest_neighbours`), so the full
    similarity matrix never materialises. A NaN or inf in a row that is searched
    raises a ``ValueError`` naming the embedding and the row.

    Args:
        source_emb: Source entity embeddings.
        target_emb: Target entity embeddings.
        exclude_source: Source indices to leave out.
        exclude_target: Target indices to leave out.
        metric: ``"cosine"`` or ``"csls"``. (default: ``"cosine"``)
        csls_k: Neighbourhood size of CSLS. (default: ``3``)
        prune: Keep only this top fraction of the pool, in ``(0, 1]`` (App. B.6).
        chunk_size: Rows per similarity block.
        search: ``"exact"`` (chunked), ``"faiss"`` or a
            :class:`~almea_pyg.metrics.FaissSearch`: the nearest neighbours from
            faiss top-k lists, for large graphs. (default: ``"exact"``)
        search_kwargs: Arguments of the :class:`~almea_pyg.metrics.FaissSearch`
            that ``search="faiss"`` builds.

    Shapes:
        source_emb: ``(N_s, d)``, target_emb: ``(N_t, d)`` -> three ``(K,)`` tensors.
    """
    if source_emb.dim() != 2 or target_emb.dim() != 2:
        raise ValueError("candidate_pool: embeddings must be 2-D [N, d] tensors")
    if source_emb.size(1) != target_emb.size(1):
        raise ValueError(
            f"candidate_pool: embedding sizes differ ({source_emb.size(1)} vs "
            f"{target_emb.size(1)})"
        )
    if prune is not None and not 0 < prune <= 1:
        raise ValueError(f"candidate_pool: prune must be in (0, 1], got {prune}")
    device = source_emb.device
    src = keep_mask(source_emb.size(0), exclude_source, device).nonzero().view(-1)
    tgt = keep_mask(target_emb.size(0), exclude_target, device).nonzero().view(-1)
    source, target = source_emb[src], target_emb[tgt]
    check_finite("source_emb", source, src)
    check_finite("target_emb", target, tgt)
    i, j, score = mutual_nearest_neighbours(
        source,
        target,
        metric=metric,
        csls_k=csls_k,
        chunk_size=chunk_size,
        search=search,
        search_kwargs=search_kwargs,
    )
    if prune is not None:
        keep = max(1, round(prune * i.numel())) if i.numel() else 0
        i, j, score = i[:keep], j[:keep], score[:keep]
    return CandidatePool(src[i], tgt[j], score)
