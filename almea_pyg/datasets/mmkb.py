"""The MMKG benchmark pairs FB15K-DB15K and FB15K-YAGO15K as PyG datasets."""

from __future__ import annotations

from typing import Any

from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers.mmkb import read_mmkb_pair
from almea_pyg.datasets.base import PairDataset
from almea_pyg.typing import DatasetPairName

#: The KGs of each pair, source first.
PAIRS: dict[str, tuple[str, str]] = {
    "FB15K_DB15K": ("FB15K", "DB15K"),
    "FB15K_YAGO15K": ("FB15K", "YAGO15K"),
}

#: The files of each KG (``<KG>/<KG>_<kind>.txt``).
KG_FILES: dict[str, tuple[str, ...]] = {
    "FB15K": ("EntityTriples", "NumericalTriples", "ImageIndex"),
    "DB15K": ("EntityTriples", "NumericalTriples", "ImageIndex", "SameAsLink"),
    "YAGO15K": ("EntityTriples", "NumericalTriples", "ImageIndex", "SameAsLink"),
}

URL = "https://raw.githubusercontent.com/mniepert/mmkb/master/{path}"

#: SHA-256 of the upstream files whose content is known; the others are not
#: checked (their checksum is logged instead).
SHA256: dict[str, str] = {
    "DB15K/DB15K_EntityTriples.txt": (
        "88e96600a24fc2606c2bf5fe81ce7b6e3753542f489fefe8ac5f2a024b65e222"
    ),
    "DB15K/DB15K_ImageIndex.txt": (
        "fcd2f034111388af8ae3fc58e15822d85b02d9d043b5191b4b0ffa0a622bd29b"
    ),
    "DB15K/DB15K_SameAsLink.txt": (
        "329f13f5834eff712ab7fcaa214407d3f48bcaa9b6c48e5fcae632994e070141"
    ),
    "FB15K/FB15K_ImageIndex.txt": (
        "3e7e2be4f8f801d0cfc57ab7fcbb537ffe3d26212f17383c4091c19686f76940"
    ),
    "FB15K/FB15K_NumericalTriples.txt": (
        "9fd4f2dfe95af2bc4caa6ce1db84641168f42be759217dfbfcf95ca79d5aa0f3"
    ),
    "YAGO15K/YAGO15K_EntityTriples.txt": (
        "a3cd0d87ceedd3f00cd8941b3c338e896c7529a78c7ce22afff0eaefb3c53211"
    ),
    "YAGO15K/YAGO15K_ImageIndex.txt": (
        "af68898baf5ca12c0de922d5cf1d683a180ff30a58da8c64737a750030f0eb81"
    ),
    "YAGO15K/YAGO15K_NumericalTriples.txt": (
        "5fbe5c6ab0ac9dd2ec1c393ac35abc7a7043ba851747b6f3033940751610a1e8"
    ),
    "YAGO15K/YAGO15K_SameAsLink.txt": (
        "a32768251e35fc199aebd1087bd8fac25cc4fe79a8167811f58ae86b2d35bb8f"
    ),
}


class MMKB(PairDataset):
    r"""An MMKG entity-alignment pair from the mmkb repository (Liu et al., 2019).

    ``FB15K_DB15K`` (12,846 links) or ``FB15K_YAGO15K`` (11,199 links), read by
    :func:`~almea_pyg.data.readers.read_mmkb_pair` and given relation and
    attribute features (bag of the ``top_k`` most frequent relations and
    attributes, :class:`~almea_pyg.data.features.BuildModalityFeatures`). The
    single item is the unsplit :class:`~almea_pyg.data.MMKGPair` (also
    :attr:`pair`); call ``.split(ratio, seed=...)`` on it. There are no image
    features: mmkb's VGG16 files are not in the repository (pass them to
    :func:`~almea_pyg.data.readers.read_mmkb_pair` yourself if you have them).

    Without ``raw_dir`` the raw files are downloaded from
    github.com/mniepert/mmkb into ``root/raw/``; with ``raw_dir`` (a directory in
    mmkb's layout, ``FB15K/FB15K_EntityTriples.txt`` etc.) they are read from
    there. Caching as in :class:`~almea_pyg.datasets.base.PairDataset`:
    ``root/processed/<pair>/pair_top<top_k>_<fingerprint>.pt``.

    Args:
        root (str): Root directory of the dataset.
        pair (str, optional): ``"FB15K_DB15K"`` or ``"FB15K_YAGO15K"``.
            (default: ``"FB15K_DB15K"``)
        **kwargs: ``transform``, ``pre_transform``, ``force_reload``, ``top_k``
            (default ``1000``), ``raw_dir``, ``log``: see
            :class:`~almea_pyg.datasets.base.PairDataset`.
    """

    PAIRS = tuple(PAIRS)
    HOME = "https://github.com/mniepert/mmkb"
    LAYOUT = "mmkb's layout (FB15K/FB15K_EntityTriples.txt, ...)"
    PAIR_FOLDER = False

    def __init__(
        self, root: str, pair: DatasetPairName = "FB15K_DB15K", **kwargs: Any
    ) -> None:
        super().__init__(root, pair, **kwargs)

    @property
    def raw_file_names(self) -> list[str]:
        return [
            f"{kg}/{kg}_{kind}.txt"
            for kg in PAIRS[self.pair_name]
            for kind in KG_FILES[kg]
        ]

    def raw_url(self, name: str) -> str:
        return URL.format(path=name)

    def raw_sha256(self, name: str) -> str | None:
        return SHA256.get(name)

    def read_raw(self) -> MMKGPair:
        return read_mmkb_pair(self.raw_dir, *PAIRS[self.pair_name])


class FB15KDB15K(MMKB):
    """:class:`MMKB` with ``pair="FB15K_DB15K"``; same keyword arguments."""

    def __init__(self, root: str, **kwargs) -> None:
        super().__init__(root, "FB15K_DB15K", **kwargs)


class FB15KYAGO15K(MMKB):
    """:class:`MMKB` with ``pair="FB15K_YAGO15K"``; same keyword arguments."""

    def __init__(self, root: str, **kwargs) -> None:
        super().__init__(root, "FB15K_YAGO15K", **kwargs)
