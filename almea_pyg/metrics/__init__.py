"""Similarity search and ranking metrics for entity alignment."""

from almea_pyg.metrics.knn import FaissSearch
from almea_pyg.metrics.ranking import (
    RankingMetric,
    alignment_ranks,
    evaluate_alignment,
    evaluate_directions,
    hits_at_k,
    mean_reciprocal_rank,
)
from almea_pyg.metrics.similarity import (
    AlignmentCandidates,
    alignment_candidates,
    check_finite,
    csls_neighbourhood,
    mutual_nearest_neighbours,
    similarity_chunks,
    topk_similarity,
)

__all__ = [
    "AlignmentCandidates",
    "FaissSearch",
    "RankingMetric",
    "alignment_candidates",
    "alignment_ranks",
    "check_finite",
    "csls_neighbourhood",
    "evaluate_alignment",
    "evaluate_directions",
    "hits_at_k",
    "mean_reciprocal_rank",
    "mutual_nearest_neighbours",
    "similarity_chunks",
    "topk_similarity",
]
