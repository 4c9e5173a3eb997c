"""Training: the trainer (full-graph or mini-batch with neighbour sampling), its
data-parallel form over processes, and Adam for row-sparse entity tables."""

from almea_pyg.io import atomic_save
from almea_pyg.train.distributed import DistributedTrainer
from almea_pyg.train.optim import RowSparseAdam
from almea_pyg.train.sampling import NeighborSampling
from almea_pyg.train.trainer import Trainer

__all__ = [
    "DistributedTrainer",
    "NeighborSampling",
    "RowSparseAdam",
    "Trainer",
    "atomic_save",
]
