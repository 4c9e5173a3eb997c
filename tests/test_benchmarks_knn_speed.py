"""benchmarks/knn_speed.py: the embeddings, the recall, and a tiny run."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "knn_speed.py"


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("faiss", reason="faiss is not installed (almea-pyg[faiss])")
    spec = importlib.util.spec_from_file_location("knn_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def in_process(bench, monkeypatch):
    """Workers run in this process (same command line), to keep the tests fast."""
    children = []

    def run_child(cmd, env=None):
        children.append(cmd)
        return bench.main(cmd[2:])

    monkeypatch.setattr(bench, "_run_child", run_child)
    return children


def test_clustered_embeddings(bench):
    x, y = bench.clustered_embeddings(
        130, 16, cluster_size=10, spread=0.5, noise=1.0, seed=0, block=50
    )
    assert x.shape == y.shape == (130, 16) and x.dtype == torch.float32
    torch.testing.assert_close(x.norm(dim=1), torch.ones(130))
    torch.testing.assert_close(y.norm(dim=1), torch.ones(130))
    again = bench.clustered_embeddings(
        130, 16, cluster_size=10, spread=0.5, noise=1.0, seed=0, block=50
    )
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    # Each source is nearer its own counterpart than a random target.
    assert (x * y).sum(dim=1).mean() > (x * y.roll(1, 0)).sum(dim=1).mean() + 0.3


def test_recall_and_chunk_size(bench):
    exact = torch.tensor([[0, 1, 2], [3, 4, 5]])
    found = torch.tensor([[2, 1, 9], [-1, -1, -1]])
    assert bench.recall(found, exact) == pytest.approx(2 / 6)
    assert bench.exact_chunk_size(10_000, 1.0) == 1024
    assert bench.exact_chunk_size(1_000_000, 1.0) == 268


def test_tiny_run(bench, in_process, tmp_path):
    out = tmp_path / "knn.json"
    argv = ["--sizes", "600", "--queries", "50", "--links", "40", "--dim", "16"]
    argv += ["--cluster-size", "10", "--nprobe", "2", "4", "--nlist-per-sqrt", "1"]
    argv += ["--hnsw-m", "8", "--ef-search", "16"]
    bench.main([*argv, "--all-sources-max-n", "600", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["protocol"]["faiss_version"]
    assert "FaissSearch(index='flat'" in report["protocol"]["faiss"]
    (entry,) = report["sizes"]
    # candidates and evaluation: exact, faiss; all sources: also hnsw; indexes
    assert entry["n"] == 600 and len(in_process) == 8
    for task in ("candidates", "evaluation", "candidates_all"):
        exact, faiss = entry[task]["exact"], entry[task]["faiss"]
        assert exact["search"] == {"backend": "exact"} and exact["chunk_size"] == 1024
        assert faiss["search"]["index"] == "Flat"  # small: flat, exact
        assert exact["seconds"] > 0 and faiss["peak_added_mib"] >= 0
        assert "top10" not in exact and "top10" not in faiss
    assert entry["candidates"]["faiss_recall@10"] == pytest.approx(1.0)
    assert entry["candidates_all"]["faiss_recall@10"] == pytest.approx(1.0)
    hnsw_run = entry["candidates_all"]["hnsw"]
    assert hnsw_run["search"]["index"] == "HNSW32,Flat" and "top10" not in hnsw_run
    assert entry["candidates_all"]["hnsw_recall@10"] > 0.9
    assert entry["evaluation"]["metrics_max_abs_diff"] < 0.05  # float32 near-ties
    # at most one of the 40 links is unranked (its target far down the list,
    # where an unlisted target could outscore it): the metrics barely move
    assert entry["evaluation"]["faiss"]["search"]["unranked"] <= 1
    ivf, hnsw = entry["approximate"]["indexes"]
    assert ivf["index"] == "IVF15,Flat" and set(ivf["search"]) == {
        "nprobe=2",
        "nprobe=4",
    }
    assert 0 < ivf["search"]["nprobe=4"]["recall@10"] <= 1
    assert hnsw["index"] == "HNSW8,Flat" and set(hnsw["search"]) == {"ef_search=16"}
    assert hnsw["search"]["ef_search=16"]["recall@10"] > 0.9
    assert hnsw["build"]["seconds"] > 0


def test_exact_is_skipped_above_the_limit(bench, in_process, tmp_path):
    out = tmp_path / "knn.json"
    argv = ["--sizes", "300", "--queries", "20", "--links", "20", "--dim", "8"]
    argv += ["--exact-max-n", "100", "--all-sources-max-n", "0"]
    argv += ["--nlist-per-sqrt", "--hnsw-m"]
    bench.main([*argv, "--out", str(out)])
    (entry,) = json.loads(out.read_text())["sizes"]
    assert entry["candidates"]["exact"] == {"skipped": "skipped: n > --exact-max-n 100"}
    assert "seconds" in entry["candidates"]["faiss"]
    assert "faiss_recall@10" not in entry["candidates"]
    assert "approximate" not in entry
    assert "candidates_all" not in entry
