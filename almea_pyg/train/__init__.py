"""Training: the trainer (full-graph or mini-batch with neighbour sampling), and its
data-parallel form over processes."""

from almea_pyg.io import atomic_save
from almea_pyg.train.distributed import DistributedTrainer
from almea_pyg.train.sampling import NeighborSampling
from almea_pyg.train.trainer import Trainer

__all__ = ["DistributedTrainer", "NeighborSampling", "Trainer", "atomic_save"]
