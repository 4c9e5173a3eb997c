"""Training: the full-graph trainer, and its data-parallel form over processes."""

from almea_pyg.io import atomic_save
from almea_pyg.train.distributed import DistributedTrainer
from almea_pyg.train.trainer import Trainer

__all__ = ["DistributedTrainer", "Trainer", "atomic_save"]
