"""DBP15K (Sun et al., 2017), as GCN-Align distributes it, as a PyG dataset."""

from __future__ import annotations

from typing import Any, Literal

from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers.mmea import read_mmea_pair
from almea_pyg.datasets.base import PairDataset

DBP15KPairName = Literal["zh_en", "ja_en", "fr_en"]

#: The files of a pair directory.
FILES = ("ent_ids_1", "ent_ids_2", "triples_1", "triples_2", "ref_ent_ids")

#: The GCN-Align repository at the commit that added its data (pinned).
URL = (
    "https://raw.githubusercontent.com/1049451037/GCN-Align/"
    "2928e0a77b71dc470f778b7493efd738f5a2988b/data/{path}"
)

#: SHA-256 of every file at that commit.
SHA256: dict[str, str] = {
    "zh_en/ent_ids_1": (
        "6d230db7922b58f6fe31fb75b478d5edcbb3cc7d3f76763b5af8232ff1940082"
    ),
    "zh_en/ent_ids_2": (
        "68d7cccc5334881d386094df3e4f9af479eedf3161ed00ec4d06e0685d510f69"
    ),
    "zh_en/ref_ent_ids": (
        "f6fc5f4b4c162eb21119697561b38686c48935222c11d07f08edc6efc5414507"
    ),
    "zh_en/triples_1": (
        "5bd1df6af7b51a0bc1111809c980364455e42f2cc27946cd664861f0d95aafcb"
    ),
    "zh_en/triples_2": (
        "bbab07e5d97247221d742a7ab4e14c20ffdb3125667b2bac2b317a714a07bc48"
    ),
    "ja_en/ent_ids_1": (
        "c0163c3e4d1a1173fde4941c6c3752e659ff54c50149fbe8776e10c78077f1ad"
    ),
    "ja_en/ent_ids_2": (
        "b6e8aa468861daa932f5bbb50c4743273418331839543de8889b13cc267a84a2"
    ),
    "ja_en/ref_ent_ids": (
        "60edbd1d05d65e80cc81957eb6efa06fa53901a2a3042cfb0a115abccb2dff91"
    ),
    "ja_en/triples_1": (
        "5c9396f4bc18f62f395bdea897228285be85f3590d89c336739877d7fc0eeae5"
    ),
    "ja_en/triples_2": (
        "aeb66ed5e3dd1588f4d7e2cae50bc930794dbc29063f71365242c924ae27c2d6"
    ),
    "fr_en/ent_ids_1": (
        "8c5c96ba6ef3b3a7791f2ee33e0a779049e4fee36aac77c813814964a23b4401"
    ),
    "fr_en/ent_ids_2": (
        "9e14e2ae75c45d18fc1fd310657dfd2b84925e625ceb89f96b7775f6218e042c"
    ),
    "fr_en/ref_ent_ids": (
        "ba1c4b07e67ab2581d6ca11038e9f527b08666fe5bedad3a95cb7f61579a3c64"
    ),
    "fr_en/triples_1": (
        "318c50b356055ccfdbb98d6733ecb8213b3f0ee8f2222cd9733e2d6ef04f5718"
    ),
    "fr_en/triples_2": (
        "38508926b2e93dae9bb9b066e308cbb11545e62fa93239b574b53f496aeb2f1c"
    ),
}


class DBP15K(PairDataset):
    r"""A DBP15K cross-lingual pair: DBpedia zh, ja or fr against en, 15,000 links.

    The files of GCN-Align (also read by JAPE and RDGCN): ``ent_ids_1/2``,
    ``triples_1/2``, ``ref_ent_ids``, read by
    :func:`~almea_pyg.data.readers.read_mmea_pair`. Structure only: the pair
    gets the relation modality (bag of the ``top_k`` most frequent relations,
    :class:`~almea_pyg.data.features.BuildModalityFeatures`), no attributes or
    images. The single item is the unsplit :class:`~almea_pyg.data.MMKGPair`.

    Without ``raw_dir`` the files are downloaded from the GCN-Align repository
    (pinned commit, SHA-256 checked) into ``root/raw/<pair>/``; ``raw_dir`` is a
    local copy, either GCN-Align's ``data/`` (holding ``zh_en/``, ...) or one
    pair's folder. Caching as in :class:`~almea_pyg.datasets.base.PairDataset`.

    Args:
        root (str): Root directory of the dataset.
        pair (str, optional): ``"zh_en"``, ``"ja_en"`` or ``"fr_en"``.
            (default: ``"zh_en"``)
        **kwargs: ``transform``, ``pre_transform``, ``force_reload``, ``top_k``
            (default ``1000``), ``raw_dir``, ``log``: see
            :class:`~almea_pyg.datasets.base.PairDataset`.
    """

    PAIRS = ("zh_en", "ja_en", "fr_en")
    HOME = "https://github.com/1049451037/GCN-Align (data/<pair>/)"
    LAYOUT = (
        "GCN-Align's layout (ent_ids_1, ent_ids_2, triples_1, triples_2, ref_ent_ids)"
    )

    def __init__(
        self, root: str, pair: DBP15KPairName = "zh_en", **kwargs: Any
    ) -> None:
        super().__init__(root, pair, **kwargs)

    @property
    def raw_file_names(self) -> list[str]:
        return list(FILES)

    def raw_url(self, name: str) -> str:
        return URL.format(path=f"{self.pair_name}/{name}")

    def raw_sha256(self, name: str) -> str:
        return SHA256[f"{self.pair_name}/{name}"]

    def read_raw(self) -> MMKGPair:
        return read_mmea_pair(self.raw_dir, name=self.pair_name)
