"""Entity-alignment models."""

from almea_pyg.models.almea import ALMEA, AlignmentCandidates
from almea_pyg.models.inputs import PairInputs

__all__ = ["ALMEA", "AlignmentCandidates", "PairInputs"]
