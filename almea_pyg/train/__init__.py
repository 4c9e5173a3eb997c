"""Training: the full-graph trainer."""

from almea_pyg.io import atomic_save
from almea_pyg.train.trainer import Trainer

__all__ = ["Trainer", "atomic_save"]
