"""Readers turning files into :class:`~almea_pyg.data.MMKGPair` objects.

* :mod:`~almea_pyg.data.readers.mmkb`: the raw MMKG files (FB15K, DB15K, YAGO15K);
* :mod:`~almea_pyg.data.readers.mmea`: the processed layout of MCLEA/MEAformer/ALMEA;
* :mod:`~almea_pyg.data.readers.openea`: the OpenEA benchmark layout;
* :mod:`~almea_pyg.data.readers.tsv`: generic TSV for your own KGs;
* :mod:`~almea_pyg.data.readers.detect`: :func:`read_pair`, any of these layouts
  told by the files of a directory.

Every reader raises :class:`~almea_pyg.data.errors.DataFormatError` (naming file and
line) on malformed input and :class:`FileNotFoundError` on a missing file.
"""

from almea_pyg.data.errors import DataFormatError
from almea_pyg.data.readers.detect import LAYOUTS, detect_layout, read_pair
from almea_pyg.data.readers.literals import parse_value
from almea_pyg.data.readers.mmea import read_mmea_pair
from almea_pyg.data.readers.mmkb import read_mmkb_kg, read_mmkb_pair
from almea_pyg.data.readers.openea import read_openea_pair
from almea_pyg.data.readers.tsv import load_features, read_tsv_kg, read_tsv_pair

__all__ = [
    "LAYOUTS",
    "DataFormatError",
    "detect_layout",
    "load_features",
    "parse_value",
    "read_mmea_pair",
    "read_mmkb_kg",
    "read_mmkb_pair",
    "read_openea_pair",
    "read_pair",
    "read_tsv_kg",
    "read_tsv_pair",
]
