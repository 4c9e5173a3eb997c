"""Active learning: the round loop of Algorithm 2, oracles and label files."""

from almea_pyg.active.labels import read_labels, unanswered_pairs, write_label_request
from almea_pyg.active.loop import ActiveLearner, ActiveLearningConfig, make_oracle
from almea_pyg.active.oracles import (
    HumanOracle,
    Oracle,
    OracleAnswer,
    PseudoOracle,
    SimulatedOracle,
)

__all__ = [
    "ActiveLearner",
    "ActiveLearningConfig",
    "HumanOracle",
    "Oracle",
    "OracleAnswer",
    "PseudoOracle",
    "SimulatedOracle",
    "make_oracle",
    "read_labels",
    "unanswered_pairs",
    "write_label_request",
]
