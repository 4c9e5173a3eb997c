"""Similarity search and ranking metrics for entity alignment."""

from almea_pyg.metrics.similarity import (
    csls_neighbourhood,
    mutual_nearest_neighbours,
    similarity_chunks,
    topk_similarity,
)

__all__ = [
    "csls_neighbourhood",
    "mutual_nearest_neighbours",
    "similarity_chunks",
    "topk_similarity",
]
