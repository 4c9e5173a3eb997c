"""Active learning: the round loop of Algorithm 2, oracles and label files."""

from almea_pyg.active.labels import read_labels, unanswered_pairs, write_label_request
from almea_pyg.active.loop import ActiveLearner, ActiveLearningConfig
from almea_pyg.active.oracles import (
    ORACLES,
    HumanOracle,
    Oracle,
    OracleAnswer,
    PendingRound,
    PseudoOracle,
    SimulatedOracle,
    oracle_resolver,
    register_oracle,
)

__all__ = [
    "ORACLES",
    "ActiveLearner",
    "ActiveLearningConfig",
    "HumanOracle",
    "Oracle",
    "OracleAnswer",
    "PendingRound",
    "PseudoOracle",
    "SimulatedOracle",
    "oracle_resolver",
    "read_labels",
    "register_oracle",
    "unanswered_pairs",
    "write_label_request",
]
