"""Training: the full-graph trainer."""

from almea_pyg.train.trainer import Trainer, atomic_save

__all__ = ["Trainer", "atomic_save"]
