"""The base of the named datasets: one :class:`MMKGPair` read from raw files,
processed once and cached under a fingerprint of those files."""

from __future__ import annotations

import hashlib
import logging
import os
import os.path as osp
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar
from urllib.error import URLError

from torch_geometric.data import Dataset, download_url

from almea_pyg.data.features import DEFAULT_TOP_K, BuildModalityFeatures
from almea_pyg.data.pair import MMKGPair

logger = logging.getLogger(__name__)

#: Hex digits of the raw-file fingerprint in a processed file's name.
FINGERPRINT_DIGITS = 16


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class PairDataset(Dataset):
    r"""A PyG dataset whose single item is one unsplit :class:`MMKGPair`.

    Subclasses name their pairs (:attr:`PAIRS`), raw files
    (:attr:`raw_file_names`), where those come from (:meth:`raw_url`,
    :meth:`raw_sha256`, :attr:`HOME`) and how they are read (:meth:`read_raw`).
    The pair gets relation and attribute features
    (:class:`~almea_pyg.data.features.BuildModalityFeatures`) and is cached as
    ``root/processed/<pair>/<stem>_<fingerprint>.pt``, the fingerprint a SHA-256
    of the raw files' bytes: raw files other than those of the cache (another
    ``raw_dir``, an edited file) are processed anew, and their pair replaces the
    cache.

    Without ``raw_dir`` the raw files are downloaded into ``root/raw/`` (where
    the subclass has a verified URL); with ``raw_dir`` they are read from there,
    nothing downloaded or copied.

    Args:
        root (str): Root directory of the dataset.
        pair (str): One of :attr:`PAIRS`.
        transform (callable, optional): Applied to the :class:`MMKGPair` on
            every access. (default: ``None``)
        pre_transform (callable, optional): Applied to the :class:`MMKGPair`
            before it is cached. (default: ``None``)
        force_reload (bool, optional): Re-process even if cached.
            (default: ``False``)
        top_k (int, optional): Relations and attributes kept as features.
            (default: ``1000``)
        raw_dir (str, optional): A local directory of raw files to read instead
            of downloading. (default: ``None``)
        log (bool, optional): Print progress to the console. (default: ``True``)
    """

    #: The pair names.
    PAIRS: ClassVar[tuple[str, ...]]
    #: Where to get the raw files by hand (for messages).
    HOME: ClassVar[str]
    #: The layout a local ``raw_dir`` must hold (for messages).
    LAYOUT: ClassVar[str]
    #: Raw files of a pair live in ``<raw dir>/<pair>/`` (else in the raw dir).
    PAIR_FOLDER: ClassVar[bool] = True

    def __init__(
        self,
        root: str,
        pair: str,
        *,
        transform: Callable[[MMKGPair], MMKGPair] | None = None,
        pre_transform: Callable[[MMKGPair], MMKGPair] | None = None,
        force_reload: bool = False,
        top_k: int = DEFAULT_TOP_K,
        raw_dir: str | os.PathLike | None = None,
        log: bool = True,
    ) -> None:
        if pair not in self.PAIRS:
            raise ValueError(f"pair must be one of {sorted(self.PAIRS)}, got {pair!r}")
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

    def read_raw(self) -> MMKGPair:
        """The pair read from the files in :attr:`raw_dir`, before features."""
        raise NotImplementedError

    def raw_url(self, name: str) -> str | None:
        """The download URL of raw file ``name``; ``None``: no verified URL."""
        return None

    def raw_sha256(self, name: str) -> str | None:
        """The expected SHA-256 of downloaded raw file ``name`` (``None``: unknown)."""
        return None

    @property
    def raw_dir(self) -> str:
        folder = self._local_raw_dir or osp.join(self.root, "raw")
        if not self.PAIR_FOLDER:
            return folder
        # A local raw_dir without a <pair>/ folder is the pair's folder itself.
        inside = osp.join(folder, self.pair_name)
        if self._local_raw_dir is not None and not osp.isdir(inside):
            return folder
        return inside

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, "processed", self.pair_name)

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
            self._fingerprint = digest.hexdigest()[:FINGERPRINT_DIGITS]
        return self._fingerprint

    def _stale_caches(self) -> list[Path]:
        """Processed files of this stem made from other raw files."""
        folder = Path(self.processed_dir)
        found = [*folder.glob(f"{self._cache_stem}.pt")]
        found += folder.glob(f"{self._cache_stem}_{'?' * FINGERPRINT_DIGITS}.pt")
        return [path for path in found if path.name != self.processed_file_names]

    def _by_hand(self) -> str:
        """Where to get the raw files and where to put them."""
        return (
            f"Get the files of {self.pair_name} from {self.HOME} by hand and put "
            f"them in {self.raw_dir} as {', '.join(self.raw_file_names)}, or pass "
            "raw_dir= pointing to a directory in that layout."
        )

    def download(self) -> None:
        missing = [name for name in self.raw_file_names if not self._has_raw(name)]
        if self._local_raw_dir is not None:
            raise FileNotFoundError(
                f"raw_dir {self.raw_dir} lacks {missing}; it must hold {self.LAYOUT}"
            )
        if any(self.raw_url(name) is None for name in missing):
            raise FileNotFoundError(
                f"{self.__class__.__name__} files are not downloaded automatically "
                f"(no verified URL). {self._by_hand()}"
            )
        for name in missing:
            self._download_file(name)

    def _has_raw(self, name: str) -> bool:
        return osp.isfile(osp.join(self.raw_dir, name))

    def _download_file(self, name: str) -> None:
        folder, filename = osp.split(osp.join(self.raw_dir, name))
        url = self.raw_url(name)
        part = osp.join(folder, filename + ".part")
        try:
            download_url(url, folder, log=self.log, filename=filename + ".part")
        except (URLError, OSError) as error:
            if osp.exists(part):
                os.remove(part)
            raise RuntimeError(
                f"Could not download {url} ({error}). {self._by_hand()}"
            ) from error
        checksum = sha256sum(part)
        expected = self.raw_sha256(name)
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
        pair = BuildModalityFeatures(top_k=self.top_k)(self.read_raw())
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
