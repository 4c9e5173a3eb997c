import logging
import os
import shutil
import time
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

import almea_pyg.datasets.base as base_module
import almea_pyg.datasets.mmkb as mmkb_module
from almea_pyg.data.pair import MMKGPair
from almea_pyg.datasets import FB15KDB15K, FB15KYAGO15K, MMKB
from almea_pyg.datasets.base import sha256sum
from almea_pyg.typing import ENTITY, RELATION_EDGE

FILES = {
    "FB15K/FB15K_EntityTriples.txt": "/m/a /r/x /m/b .\n/m/b /r/y /m/c .\n",
    "FB15K/FB15K_NumericalTriples.txt": "/m/a\t<p>\t1.5\n/m/c\t<q>\t2\n",
    "FB15K/FB15K_ImageIndex.txt": "/m/a\tIMG1\n",
    "DB15K/DB15K_EntityTriples.txt": "<A> <r> <B> .\n<B> <r> <C> .\n<C> <s> <A> .\n",
    "DB15K/DB15K_NumericalTriples.txt": '<A> <p> "1982"^^<t> .\n',
    "DB15K/DB15K_ImageIndex.txt": "<B>\tIMG1\n",
    "DB15K/DB15K_SameAsLink.txt": "/m/a <SameAs> <A> .\n/m/b <SameAs> <B> .\n",
}


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mmkb_raw"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_process_from_local_raw_dir(tmp_path, raw_dir):
    dataset = MMKB(tmp_path / "root", "FB15K_DB15K", raw_dir=raw_dir, top_k=1)
    assert repr(dataset) == "MMKB(FB15K_DB15K)"
    assert len(dataset) == 1
    pair = dataset[0]
    assert isinstance(pair, MMKGPair) and pair.name == "FB15K_DB15K"
    assert pair.num_entities == (3, 3)
    assert pair.links.tolist() == [[0, 1], [0, 1]]
    assert pair.train_links.size(1) == 0  # unsplit
    assert pair.modalities == ["attr", "rel"]
    assert pair.source[ENTITY].x_rel.size(1) == 1  # top_k relations kept
    assert pair.source[ENTITY].has_image_index.tolist() == [True, False, False]
    assert dataset.pair.links.equal(pair.links)
    (cached,) = (tmp_path / "root/processed/FB15K_DB15K").glob("pair_top1_*.pt")
    assert cached.name == f"pair_top1_{dataset.raw_fingerprint()}.pt"
    assert not (tmp_path / "root" / "raw").exists()  # nothing copied or downloaded
    assert sorted(os.listdir(raw_dir)) == ["DB15K", "FB15K"]


def test_cache_is_reused(tmp_path, raw_dir, monkeypatch):
    MMKB(tmp_path, raw_dir=raw_dir)

    def fail(*args, **kwargs):
        raise AssertionError("processed again")

    monkeypatch.setattr(mmkb_module, "read_mmkb_pair", fail)
    assert MMKB(tmp_path, raw_dir=raw_dir)[0].links.size(1) == 2
    with pytest.raises(AssertionError, match="processed again"):
        MMKB(tmp_path, raw_dir=raw_dir, force_reload=True)


def test_cache_follows_the_raw_files(tmp_path, raw_dir, caplog):
    other = tmp_path / "other_raw"
    shutil.copytree(raw_dir, other)
    links = other / "DB15K" / "DB15K_SameAsLink.txt"
    links.write_text("/m/a <SameAs> <B> .\n/m/b <SameAs> <A> .\n")
    root = tmp_path / "root"
    first = MMKB(root, raw_dir=raw_dir)[0]
    with caplog.at_level(logging.INFO, logger="almea_pyg.datasets.base"):
        second = MMKB(root, raw_dir=other)[0]
    assert first.links.tolist() == [[0, 1], [0, 1]]
    assert second.links.tolist() == [[0, 1], [1, 0]]
    assert "differ from those of the cached pair_top1000_" in caplog.text
    # The stale cache is replaced, not kept beside.
    (cached,) = (root / "processed" / "FB15K_DB15K").glob("pair_top1000*.pt")
    # Editing a raw file in place re-processes too; reading it again does not.
    links.write_text("/m/a <SameAs> <A> .\n")
    assert MMKB(root, raw_dir=other)[0].links.tolist() == [[0], [0]]
    (cached,) = (root / "processed" / "FB15K_DB15K").glob("pair_top1000*.pt")
    modified = cached.stat().st_mtime_ns
    assert MMKB(root, raw_dir=other)[0].links.tolist() == [[0], [0]]
    assert cached.stat().st_mtime_ns == modified


def test_transforms_get_the_pair(tmp_path, raw_dir):
    def pre_transform(pair):
        pair.name = "renamed"
        return pair

    dataset = FB15KDB15K(
        tmp_path,
        raw_dir=raw_dir,
        pre_transform=pre_transform,
        transform=lambda pair: pair.split(0.5, seed=0),
    )
    assert repr(dataset) == "FB15KDB15K(FB15K_DB15K)"
    pair = dataset.pair
    assert pair.name == "renamed"
    assert pair.train_links.size(1) == 1 and pair.test_links.size(1) == 1


def test_bad_arguments(tmp_path, raw_dir):
    with pytest.raises(ValueError, match="FB15K_YAGO15K"):
        MMKB(tmp_path, "DB15K_YAGO15K", raw_dir=raw_dir)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        MMKB(tmp_path, raw_dir=tmp_path / "absent")
    # A local raw_dir without the YAGO15K files: a clear error, no download.
    with pytest.raises(FileNotFoundError, match="YAGO15K/YAGO15K_EntityTriples.txt"):
        FB15KYAGO15K(tmp_path, raw_dir=raw_dir)


def fake_download(files):
    """A stand-in for ``download_url`` serving ``files`` by URL path."""

    def download(url, folder, log=True, filename=None):
        name = url.split("/master/")[1]
        path = Path(folder) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name])
        return str(path)

    return download


def test_download(tmp_path, raw_dir, monkeypatch):
    monkeypatch.setattr(base_module, "download_url", fake_download(FILES))
    checksums = {name: sha256sum(raw_dir / name) for name in FILES}
    monkeypatch.setattr(mmkb_module, "SHA256", checksums)
    dataset = MMKB(tmp_path / "root", log=False)
    assert dataset[0].links.size(1) == 2
    raw = tmp_path / "root" / "raw"
    assert (raw / "DB15K" / "DB15K_SameAsLink.txt").read_text() == FILES[
        "DB15K/DB15K_SameAsLink.txt"
    ]
    assert not list(raw.rglob("*.part"))


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.setattr(base_module, "download_url", fake_download(FILES))
    with pytest.raises(RuntimeError, match="SHA-256 .* does not match") as info:
        MMKB(tmp_path, log=False)
    assert "by hand" in str(info.value)
    # Files without a reference checksum are kept; the corrupt one is removed.
    raw = tmp_path / "raw"
    assert (raw / "FB15K" / "FB15K_EntityTriples.txt").is_file()
    assert not (raw / "FB15K" / "FB15K_NumericalTriples.txt").exists()
    assert not list(raw.rglob("*.part"))


def test_download_failure_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(url, folder, log=True, filename=None):
        raise URLError("no network")

    monkeypatch.setattr(base_module, "download_url", offline)
    with pytest.raises(RuntimeError, match="by hand") as info:
        MMKB(tmp_path, "FB15K_YAGO15K", log=False)
    message = str(info.value)
    assert "github.com/mniepert/mmkb" in message
    assert str(tmp_path / "raw") in message
    assert "YAGO15K/YAGO15K_SameAsLink.txt" in message and "raw_dir=" in message


def test_checksums_cover_the_files_identical_to_upstream():
    names = {
        f"{kg}/{kg}_{kind}.txt"
        for kg, kinds in mmkb_module.KG_FILES.items()
        for kind in kinds
    }
    unchecked = names - set(mmkb_module.SHA256)
    assert unchecked == {
        "FB15K/FB15K_EntityTriples.txt",
        "DB15K/DB15K_NumericalTriples.txt",
    }
    assert all(len(digest) == 64 for digest in mmkb_module.SHA256.values())


@pytest.mark.real_data
def test_real_fb15k_yago15k(tmp_path, mmkg_dir):
    start = time.perf_counter()
    dataset = FB15KYAGO15K(tmp_path, raw_dir=mmkg_dir, top_k=100, log=False)
    elapsed = time.perf_counter() - start
    pair = dataset.pair
    assert pair.links.size(1) == 11199
    source, target = pair.source, pair.target
    assert torch.unique(source[RELATION_EDGE].edge_index).numel() == 14787
    assert target[ENTITY].num_nodes == 15404
    assert target[RELATION_EDGE].edge_index.size(1) == 122886
    assert len(target[RELATION_EDGE].relation_names) == 32
    assert target["entity", "has_attribute", "attribute"].edge_index.size(1) == 23532
    assert target["attribute"].num_nodes == 7
    assert source[ENTITY].x_rel.size(1) == 100
    # FB15K attributes are missing for about 16 % of the entities.
    assert 0.75 < source[ENTITY].x_attr_mask.float().mean() < 0.9
    for name in ("FB15K", "YAGO15K"):  # read in place, not copied
        assert not (tmp_path / "raw" / name).exists()
    assert elapsed < 90, f"processing took {elapsed:.1f} s"
