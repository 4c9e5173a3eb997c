"""The OpenEA benchmark pairs (Sun et al., 2020) as PyG datasets."""

from __future__ import annotations

import itertools
from typing import Any

from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers.openea import REQUIRED_FILES, fold_files, read_openea_pair
from almea_pyg.datasets.base import PairDataset

#: The pair folders of ``OpenEA_dataset_v2.0``, e.g. ``"D_W_15K_V1"``.
PAIRS: tuple[str, ...] = tuple(
    "_".join(parts)
    for parts in itertools.product(
        ("D_W", "D_Y", "EN_DE", "EN_FR"), ("15K", "100K"), ("V1", "V2")
    )
)

#: The OpenEA archive, as the OpenEA repository links it. Its checksum is not
#: verified here, so it is not downloaded automatically.
ARCHIVE = "https://figshare.com/ndownloader/files/34234391 (OpenEA_dataset_v2.0.zip)"


class OpenEA(PairDataset):
    r"""An OpenEA pair: DBpedia against Wikidata or YAGO, or across languages.

    Read by :func:`~almea_pyg.data.readers.read_openea_pair` and given relation
    and attribute features (:class:`~almea_pyg.data.features.BuildModalityFeatures`).
    The single item is the :class:`~almea_pyg.data.MMKGPair`, unsplit, or with
    ``fold=k`` split into the train, valid and test links of
    ``721_5fold/<k>/`` (each fold is cached apart).

    The files are not downloaded: unzip ``OpenEA_dataset_v2.0.zip`` (see
    :data:`ARCHIVE`) and pass ``raw_dir=`` (the unzipped folder, holding
    ``D_W_15K_V1/`` etc., or one pair's folder), or put the pair's folder in
    ``root/raw/``. Caching as in :class:`~almea_pyg.datasets.base.PairDataset`.

    Args:
        root (str): Root directory of the dataset.
        pair (str, optional): One of :data:`PAIRS`. (default: ``"D_W_15K_V1"``)
        fold (int, optional): The pre-computed split to apply (1 to 5); unsplit
            if ``None``. (default: ``None``)
        **kwargs: ``transform``, ``pre_transform``, ``force_reload``, ``top_k``
            (default ``1000``), ``raw_dir``, ``log``: see
            :class:`~almea_pyg.datasets.base.PairDataset`.
    """

    PAIRS = PAIRS
    HOME = ARCHIVE
    LAYOUT = (
        "OpenEA's layout (rel_triples_1, rel_triples_2, attr_triples_1, "
        "attr_triples_2, ent_links, 721_5fold/<k>/)"
    )

    def __init__(
        self,
        root: str,
        pair: str = "D_W_15K_V1",
        *,
        fold: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.fold = fold
        super().__init__(root, pair, **kwargs)

    @property
    def raw_file_names(self) -> list[str]:
        names = [*REQUIRED_FILES, "attr_triples_1", "attr_triples_2"]
        return names + (fold_files(self.fold) if self.fold is not None else [])

    @property
    def _cache_stem(self) -> str:
        fold = "" if self.fold is None else f"_fold{self.fold}"
        return f"pair_top{self.top_k}{fold}"

    def read_raw(self) -> MMKGPair:
        return read_openea_pair(self.raw_dir, fold=self.fold, name=self.pair_name)
