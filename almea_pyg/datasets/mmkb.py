"""The MMKG benchmark pairs FB15K-DB15K and FB15K-YAGO15K as PyG datasets."""

from __future__ import annotations

import hashlib
import logging
import os
import os.path as osp
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

from torch_geometric.data import Dataset, download_url

from almea_pyg.data.features import BuildModalityFeatures
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers.mmkb import read_mmkb_pair
from almea_pyg.typing import DatasetPairName

logger = logging.getLogger(__name__)

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


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MMKB(Dataset):
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
    there and nothing is downloaded or copied. The processed pair is cached as
    ``root/processed/<pair>/pair_top<top_k>_<fingerprint>.pt``, the fingerprint
    a SHA-256 of the raw files' bytes: raw files other than those of the cache
    (another ``raw_dir``, edited links) are processed anew, and their pair
    replaces the cache.

    Args:
        root (str): Root directory of the dataset.
        pair (str, optional): ``"FB15K_DB15K"`` or ``"FB15K_YAGO15K"``.
            (default: ``"FB15K_DB15K"``)
        transform (callable, optional): Applied to the :class:`MMKGPair` on
            every access. (default: ``None``)
        pre_transform (callable, optional): Applied to the :class:`MMKGPair`
            before it is cached. (default: ``None``)
        force_reload (bool, optional): Re-process even if cached.
            (default: ``False``)
        top_k (int, optional): Relations and attributes kept as features.
            (default: ``1000``)
        raw_dir (str, optional): A local directory in mmkb's layout to read
            instead of downloading. (default: ``None``)
        log (bool, optional): Print progress to the console. (default: ``True``)
    """

    def __init__(
        self,
        root: str,
        pair: DatasetPairName = "FB15K_DB15K",
        *,
        transform: Callable[[MMKGPair], MMKGPair] | None = None,
        pre_transform: Callable[[MMKGPair], MMKGPair] | None = None,
        force_reload: bool = False,
        top_k: int = 1000,
        raw_dir: str | os.PathLike | None = None,
        log: bool = True,
    ) -> None:
        if pair not in PAIRS:
            raise ValueError(f"pair must be one of {sorted(PAIRS)}, got {pair!r}")
        if raw_dir is not None and not Path(raw_dir).is_dir():
            raise FileNotFoundError(f"raw_dir {raw_dir}: no such directory")
        self.pair_name = pair
        self.top_k = top_k
        self._local_raw_dir = None if raw_dir is None else osp.abspath(raw_dir)
        self._fingerprint: str | None = None
        super().__init__(
            str(root), transform, pre_transform, force_reload=force_reload, log=log
        )
        self._pair = MMKGPair.load(self.processed_paths[0])

    @property
    def raw_dir(self) -> str:
        return self._local_raw_dir or osp.join(self.root, "raw")

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, "processed", self.pair_name)

    @property
    def raw_file_names(self) -> list[str]:
        return [
            f"{kg}/{kg}_{kind}.txt"
            for kg in PAIRS[self.pair_name]
            for kind in KG_FILES[kg]
        ]

    @property
    def processed_file_names(self) -> str:
        return f"{self._cache_stem}_{self.raw_fingerprint()}.pt"

    @property
    def _cache_stem(self) -> str:
        return f"pair_top{self.top_k}"

    def raw_fingerprint(self) -> str:
        """The first 16 hex digits of a SHA-256 over the raw files' names and bytes.

        Part of the processed file name, so that a pair processed from other raw
        files is never returned for these (computed once, after the download).
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name in self.raw_file_names:
                checksum = sha256sum(osp.join(self.raw_dir, name))
                digest.update(f"{name}\t{checksum}\n".encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def _stale_caches(self) -> list[Path]:
        """Processed files of this ``top_k`` made from other raw files."""
        folder = Path(self.processed_dir)
        found = [*folder.glob(f"{self._cache_stem}.pt")]
        found += folder.glob(f"{self._cache_stem}_*.pt")
        return [path for path in found if path.name != self.processed_file_names]

    def download(self) -> None:
        missing = [name for name in self.raw_file_names if not self._has_raw(name)]
        if self._local_raw_dir is not None:
            raise FileNotFoundError(
                f"raw_dir {self.raw_dir} lacks {missing}; it must hold mmkb's "
                "layout (FB15K/FB15K_EntityTriples.txt, ...)"
            )
        for name in missing:
            self._download_file(name)

    def _has_raw(self, name: str) -> bool:
        return osp.isfile(osp.join(self.raw_dir, name))

    def _download_file(self, name: str) -> None:
        folder, filename = osp.split(osp.join(self.raw_dir, name))
        url = URL.format(path=name)
        part = osp.join(folder, filename + ".part")
        try:
            download_url(url, folder, log=self.log, filename=filename + ".part")
        except (URLError, OSError) as error:
            if osp.exists(part):
                os.remove(part)
            raise RuntimeError(
                f"Could not download {url} ({error}). Get the files of "
                f"{' and '.join(PAIRS[self.pair_name])} from "
                f"https://github.com/mniepert/mmkb by hand and put them in "
                f"{self.raw_dir} as {', '.join(self.raw_file_names)}, or pass "
                "raw_dir= pointing to a directory in that layout."
            ) from error
        checksum = sha256sum(part)
        expected = SHA256.get(name)
        if expected is not None and checksum != expected:
            os.remove(part)
            raise RuntimeError(
                f"{url}: SHA-256 {checksum} does not match the expected {expected}; "
                f"the upstream file changed or the download is corrupt. Put a "
                f"verified copy at {osp.join(self.raw_dir, name)} by hand."
            )
        if expected is None:
            logger.info("%s: no reference checksum, SHA-256 %s", name, checksum)
        os.replace(part, osp.join(folder, filename))

    def process(self) -> None:
        stale = self._stale_caches()
        if stale:
            logger.info(
                "%s: the raw files in %s differ from those of the cached %s; "
                "processing again",
                self.pair_name,
                self.raw_dir,
                ", ".join(path.name for path in stale),
            )
        pair = read_mmkb_pair(self.raw_dir, *PAIRS[self.pair_name])
        pair = BuildModalityFeatures(top_k=self.top_k)(pair)
        if self.pre_transform is not None:
            pair = self.pre_transform(pair)
        pair.save(self.processed_paths[0])
        for path in stale:
            path.unlink()

    def len(self) -> int:
        return 1

    def get(self, idx: int) -> MMKGPair:
        return self._pair

    @property
    def pair(self) -> MMKGPair:
        """The (transformed) pair: ``dataset[0]``."""
        return self[0]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.pair_name})"


class FB15KDB15K(MMKB):
    """:class:`MMKB` with ``pair="FB15K_DB15K"``; same keyword arguments."""

    def __init__(self, root: str, **kwargs) -> None:
        super().__init__(root, "FB15K_DB15K", **kwargs)


class FB15KYAGO15K(MMKB):
    """:class:`MMKB` with ``pair="FB15K_YAGO15K"``; same keyword arguments."""

    def __init__(self, root: str, **kwargs) -> None:
        super().__init__(root, "FB15K_YAGO15K", **kwargs)
