import os
import time
from pathlib import Path
from urllib.error import URLError

import pytest

import almea_pyg.datasets.base as base_module
import almea_pyg.datasets.dbp15k as dbp15k_module
from almea_pyg.data import MMKGPair, read_pair
from almea_pyg.datasets import DBP15K
from almea_pyg.datasets.base import sha256sum
from almea_pyg.typing import ENTITY, RELATION_EDGE

FILES = {
    "ent_ids_1": "0\thttp://zh.dbpedia.org/resource/A\n1\thttp://zh/B\n2\thttp://zh/C\n",
    "ent_ids_2": "3\thttp://dbpedia.org/resource/A\n4\thttp://en/B\n5\thttp://en/C\n",
    "triples_1": "0\t0\t1\n1\t1\t2\n",
    "triples_2": "3\t2\t4\n4\t2\t5\n5\t3\t3\n",
    "ref_ent_ids": "0\t3\n1\t4\n",
}


def write_pair(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("layout", ["data_dir", "pair_dir"])
def test_process_from_local_raw_dir(tmp_path, layout):
    write_pair(tmp_path / "data" / "ja_en")
    raw_dir = tmp_path / "data" / ("ja_en" if layout == "pair_dir" else "")
    dataset = DBP15K(tmp_path / "root", "ja_en", raw_dir=raw_dir, top_k=1, log=False)
    assert repr(dataset) == "DBP15K(ja_en)"
    assert dataset.raw_dir == str(tmp_path / "data" / "ja_en")
    pair = dataset[0]
    assert isinstance(pair, MMKGPair) and pair.name == "ja_en"
    assert pair.num_entities == (3, 3)
    assert pair.links.tolist() == [[0, 1], [0, 1]]
    assert pair.train_links.size(1) == 0  # unsplit
    assert pair.modalities == ["rel"]  # structure only
    assert pair.source[ENTITY].x_rel.size(1) == 1
    (cached,) = (tmp_path / "root/processed/ja_en").glob("pair_top1_*.pt")
    assert cached.name == f"pair_top1_{dataset.raw_fingerprint()}.pt"
    assert not (tmp_path / "root" / "raw").exists()  # nothing copied


def test_cache_is_reused(tmp_path, monkeypatch):
    raw_dir = write_pair(tmp_path / "zh_en")
    DBP15K(tmp_path / "root", raw_dir=raw_dir, log=False)

    def fail(*args, **kwargs):
        raise AssertionError("processed again")

    monkeypatch.setattr(dbp15k_module, "read_mmea_pair", fail)
    assert DBP15K(tmp_path / "root", raw_dir=raw_dir, log=False).pair.links.size(1)
    (raw_dir / "ref_ent_ids").write_text("0\t3\n")
    with pytest.raises(AssertionError, match="processed again"):
        DBP15K(tmp_path / "root", raw_dir=raw_dir, log=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="fr_en"):
        DBP15K(tmp_path, "de_en")
    raw_dir = write_pair(tmp_path / "zh_en")
    (raw_dir / "ref_ent_ids").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks \['ref_ent_ids'\]"):
        DBP15K(tmp_path / "root", raw_dir=raw_dir, log=False)


def fake_download(files):
    """A stand-in for ``download_url`` serving ``files`` by file name."""

    def download(url, folder, log=True, filename=None):
        assert "/1049451037/GCN-Align/" in url and "/data/fr_en/" in url
        path = Path(folder) / filename
        path.write_text(files[url.rsplit("/", 1)[1]])
        return str(path)

    return download


def test_download(tmp_path, monkeypatch):
    monkeypatch.setattr(base_module, "download_url", fake_download(FILES))
    checksums = {
        f"fr_en/{name}": sha256sum(write_pair(tmp_path / "x") / name) for name in FILES
    }
    monkeypatch.setattr(dbp15k_module, "SHA256", checksums)
    dataset = DBP15K(tmp_path / "root", "fr_en", log=False)
    assert dataset.pair.links.size(1) == 2
    raw = tmp_path / "root" / "raw" / "fr_en"
    assert sorted(os.listdir(raw)) == sorted(FILES)


def test_download_checksum_mismatch_and_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(base_module, "download_url", fake_download(FILES))
    with pytest.raises(RuntimeError, match="SHA-256 .* does not match"):
        DBP15K(tmp_path, "fr_en", log=False)

    def offline(url, folder, log=True, filename=None):
        raise URLError("no network")

    monkeypatch.setattr(base_module, "download_url", offline)
    with pytest.raises(RuntimeError, match="by hand") as info:
        DBP15K(tmp_path, "fr_en", log=False)
    message = str(info.value)
    assert "github.com/1049451037/GCN-Align" in message
    assert str(tmp_path / "raw" / "fr_en") in message and "raw_dir=" in message


def test_checksums_cover_every_file():
    names = {f"{pair}/{name}" for pair in DBP15K.PAIRS for name in FILES}
    assert set(dbp15k_module.SHA256) == names
    assert all(len(digest) == 64 for digest in dbp15k_module.SHA256.values())


@pytest.mark.real_data
def test_real_zh_en(tmp_path, dbp15k_dir):
    start = time.perf_counter()
    dataset = DBP15K(tmp_path, "zh_en", raw_dir=dbp15k_dir, log=False)
    elapsed = time.perf_counter() - start
    pair = dataset.pair
    assert pair.num_entities == (19388, 19572)
    assert pair.links.size(1) == 15000
    assert pair.source[RELATION_EDGE].edge_index.size(1) == 70414
    assert pair.target[RELATION_EDGE].edge_index.size(1) == 95142
    assert pair.modalities == ["rel"]
    assert elapsed < 60, f"processing took {elapsed:.1f} s"
    # The shared files are those of the pinned GCN-Align commit.
    for name in FILES:
        assert (
            sha256sum(dbp15k_dir / "zh_en" / name)
            == (dbp15k_module.SHA256[f"zh_en/{name}"])
        )
    # read_pair tells the layout and reads the same pair.
    direct = read_pair(dbp15k_dir / "zh_en")
    assert direct.links.equal(pair.links)
    assert direct.source[ENTITY].x_rel.equal(pair.source[ENTITY].x_rel)
