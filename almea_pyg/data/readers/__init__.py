"""Readers turning files into :class:`~almea_pyg.data.MMKGPair` objects.

* :mod:`~almea_pyg.data.readers.mmkb`: the raw MMKG files (FB15K, DB15K, YAGO15K);
* :mod:`~almea_pyg.data.readers.mmea`: the processed layout of MCLEA/MEAformer/ALMEA;
* :mod:`~almea_pyg.data.readers.tsv`: generic TSV for your own KGs.

Every reader raises :class:`~almea_pyg.data.errors.DataFormatError` (naming file and
line) on malformed input and :class:`FileNotFoundError` on a missing file.
"""

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.readers.literals import parse_value
from almea_pyg.data.readers.mmea import read_mmea_pair
from almea_pyg.data.readers.mmkb import read_mmkb_kg, read_mmkb_pair
from almea_pyg.data.readers.tsv import load_features, read_tsv_kg, read_tsv_pair

__all__ = [
    "DataFormatError",
    "load_features",
    "parse_value",
    "read_mmea_pair",
    "read_mmkb_kg",
    "read_mmkb_pair",
    "read_tsv_kg",
    "read_tsv_pair",
]
