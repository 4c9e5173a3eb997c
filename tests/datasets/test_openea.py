from pathlib import Path

import pytest

from almea_pyg.datasets import OpenEA
from almea_pyg.datasets.openea import PAIRS

FILES = {
    "rel_triples_1": "db:A\tdb:r\tdb:B\ndb:B\tdb:s\tdb:C\n",
    "rel_triples_2": "wd:A\twd:r\twd:B\nwd:B\twd:r\twd:C\n",
    "attr_triples_1": "db:A\tdb:born\t1982\n",
    "attr_triples_2": "wd:C\twd:born\t1982\n",
    "ent_links": "db:A\twd:A\ndb:B\twd:B\ndb:C\twd:C\n",
    "721_5fold/1/train_links": "db:A\twd:A\n",
    "721_5fold/1/valid_links": "db:B\twd:B\n",
    "721_5fold/1/test_links": "db:C\twd:C\n",
}


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """``OpenEA_dataset_v2.0/`` holding one pair, EN_FR_15K_V1."""
    root = tmp_path / "OpenEA_dataset_v2.0"
    for name, text in FILES.items():
        path = root / "EN_FR_15K_V1" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_pairs():
    assert len(PAIRS) == 16
    assert {"D_W_15K_V1", "D_Y_100K_V2", "EN_DE_15K_V2", "EN_FR_100K_V1"} <= set(PAIRS)


def test_unsplit_and_folds_cached_apart(tmp_path, raw_dir):
    root = tmp_path / "root"
    dataset = OpenEA(root, "EN_FR_15K_V1", raw_dir=raw_dir, log=False)
    assert repr(dataset) == "OpenEA(EN_FR_15K_V1)"
    pair = dataset.pair
    assert pair.name == "EN_FR_15K_V1"
    assert pair.num_entities == (3, 3) and pair.links.size(1) == 3
    assert pair.train_links.size(1) == 0
    assert pair.modalities == ["attr", "rel"]
    folded = OpenEA(root, "EN_FR_15K_V1", fold=1, raw_dir=raw_dir, log=False).pair
    assert folded.train_links.tolist() == [[0], [0]]
    assert folded.valid_links.tolist() == [[1], [1]]
    assert folded.test_links.tolist() == [[2], [2]]
    # Each fold has its own cache; neither replaces the other.
    names = sorted(
        p.name for p in (root / "processed" / "EN_FR_15K_V1").glob("pair_*.pt")
    )
    assert [name.rsplit("_", 1)[0] for name in names] == [
        "pair_top1000",
        "pair_top1000_fold1",
    ]
    OpenEA(root, "EN_FR_15K_V1", raw_dir=raw_dir, log=False)
    assert len(list((root / "processed" / "EN_FR_15K_V1").glob("pair_*.pt"))) == 2


def test_pair_folder_as_raw_dir(tmp_path, raw_dir):
    dataset = OpenEA(tmp_path, "EN_FR_15K_V1", raw_dir=raw_dir / "EN_FR_15K_V1")
    assert dataset.pair.links.size(1) == 3


def test_missing_files(tmp_path, raw_dir):
    with pytest.raises(ValueError, match="D_W_15K_V1"):
        OpenEA(tmp_path, "D_W_15K")
    with pytest.raises(FileNotFoundError, match="721_5fold/2/train_links"):
        OpenEA(tmp_path, "EN_FR_15K_V1", fold=2, raw_dir=raw_dir, log=False)
    # No raw_dir and nothing in root/raw: no download, a message saying what to do.
    with pytest.raises(FileNotFoundError, match="not downloaded automatically") as info:
        OpenEA(tmp_path, "D_Y_15K_V1", log=False)
    message = str(info.value)
    assert "figshare.com" in message and "OpenEA_dataset_v2.0.zip" in message
    assert str(tmp_path / "raw" / "D_Y_15K_V1") in message and "raw_dir=" in message
