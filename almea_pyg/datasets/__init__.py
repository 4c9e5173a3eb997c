"""PyG-style datasets: the MMKG benchmark pairs FB15K-DB15K and FB15K-YAGO15K."""

from almea_pyg.datasets.mmkb import FB15KDB15K, FB15KYAGO15K, MMKB

__all__ = ["MMKB", "FB15KDB15K", "FB15KYAGO15K"]
