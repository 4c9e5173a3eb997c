"""PyG-style datasets: the MMKG benchmark pairs, DBP15K and OpenEA."""

from almea_pyg.datasets.base import PairDataset
from almea_pyg.datasets.dbp15k import DBP15K
from almea_pyg.datasets.mmkb import FB15KDB15K, FB15KYAGO15K, MMKB
from almea_pyg.datasets.openea import OpenEA

__all__ = ["DBP15K", "MMKB", "FB15KDB15K", "FB15KYAGO15K", "OpenEA", "PairDataset"]
