"""Active candidate selection (Section 3.3, App. B): DS3 and baseline strategies.

``ds3`` is the standalone solver on any dissimilarity matrix; ``ds3_acquire`` goes
from two embedding matrices and the labelled pairs to the pairs to label next; the
strategies put DS3 and the baselines behind one interface, chosen by name.
"""

from almea_pyg.select.acquire import DS3Acquisition, ds3_acquire
from almea_pyg.select.base import (
    STRATEGIES,
    Selection,
    SelectionContext,
    Strategy,
    register_strategy,
    strategy_resolver,
)
from almea_pyg.select.dissimilarity import (
    dissimilarity_matrix,
    diversity_scores,
    pair_embeddings,
)
from almea_pyg.select.ds3 import DS3Result, ds3, simplex_projection
from almea_pyg.select.pool import CandidatePool, candidate_pool
from almea_pyg.select.strategies import (
    CoreSetStrategy,
    DegreeStrategy,
    DS3Strategy,
    RandomPairStrategy,
    RandomStrategy,
    UncertaintyStrategy,
)

__all__ = [
    "STRATEGIES",
    "CandidatePool",
    "CoreSetStrategy",
    "DS3Acquisition",
    "DS3Result",
    "DS3Strategy",
    "DegreeStrategy",
    "RandomPairStrategy",
    "RandomStrategy",
    "Selection",
    "SelectionContext",
    "Strategy",
    "UncertaintyStrategy",
    "candidate_pool",
    "dissimilarity_matrix",
    "diversity_scores",
    "ds3",
    "ds3_acquire",
    "pair_embeddings",
    "register_strategy",
    "simplex_projection",
    "strategy_resolver",
]
