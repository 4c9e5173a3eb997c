import builtins
import math

import pytest
import torch
import torch.nn.functional as F

from almea_pyg.metrics import alignment_candidates, evaluate_alignment
from almea_pyg.metrics.knn import FaissSearch, import_faiss, resolve_search
from almea_pyg.metrics.similarity import topk_similarity

needs_faiss = pytest.mark.usefixtures("needs_faiss")


def _random(n_x: int = 50, n_y: int = 70, d: int = 12, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n_x, d, generator=gen), torch.randn(n_y, d, generator=gen)


def _clustered(n: int, d: int = 32, clusters: int = 40, seed: int = 0):
    """Sources around ``clusters`` unit centres; targets are noisy sources."""
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(clusters, d, generator=gen), dim=-1)
    assign = torch.randint(clusters, (n,), generator=gen)
    x = centres[assign] + 0.3 * torch.randn(n, d, generator=gen) / d**0.5
    return x, x + 0.3 * torch.randn(n, d, generator=gen) / d**0.5


def _recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    same = (found[:, :, None] == exact[:, None, :]).any(dim=1)
    return same.double().mean().item()


@needs_faiss
@pytest.mark.parametrize("k", [1, 5, 70, 100])
@pytest.mark.parametrize("batch_size", [7, 16384])
def test_flat_search_equals_exact_topk(k: int, batch_size: int) -> None:
    x, y = _random()
    search = FaissSearch(index="flat", batch_size=batch_size)
    values, indices = search.knn(x, y, k)
    expected_values, expected_indices = topk_similarity(x, y, k)
    assert values.shape == indices.shape == (50, min(k, 70))
    assert indices.dtype == torch.long and values.dtype == x.dtype
    assert torch.equal(indices, expected_indices)  # continuous data: no ties
    torch.testing.assert_close(values, expected_values, atol=1e-5, rtol=0)


@needs_faiss
def test_float64_inputs_come_back_as_float64() -> None:
    x, y = _random()
    values, indices = FaissSearch(index="flat").knn(x.double(), y.double(), 3)
    assert values.dtype == torch.float64
    assert torch.equal(indices, topk_similarity(x, y, 3)[1])


@needs_faiss
def test_ivf_recall_is_high_on_clustered_embeddings() -> None:
    x, y = _clustered(4000)
    search = FaissSearch(index="ivf", nprobe=8)
    assert search.describe(4000) == {"index": "IVF100,Flat", "nprobe": 8}
    values, indices = search.knn(x, y, 10)
    exact_values, exact = topk_similarity(x, y, 10)
    assert _recall(indices, exact) > 0.95
    # The scores of what it finds are exact cosines.
    found = F.normalize(x, dim=-1)[:, None] * F.normalize(y, dim=-1)[indices]
    torch.testing.assert_close(values, found.sum(dim=-1), atol=1e-5, rtol=0)
    # Scanning every list is exact (up to float32 near-ties).
    values, indices = FaissSearch(index="ivf", nprobe=100).knn(x, y, 10)
    torch.testing.assert_close(values, exact_values, atol=1e-5, rtol=0)
    assert _recall(indices, exact) > 0.999


@needs_faiss
def test_hnsw_recall_is_high_on_clustered_embeddings() -> None:
    x, y = _clustered(4000)
    search = FaissSearch(index="hnsw", hnsw_m=16, ef_search=32)
    assert search.describe(4000) == {"index": "HNSW16,Flat", "ef_search": 32}
    values, indices = search.knn(x, y, 10)
    exact_values, exact = topk_similarity(x, y, 10)
    assert _recall(indices, exact) > 0.95
    found = F.normalize(x, dim=-1)[:, None] * F.normalize(y, dim=-1)[indices]
    torch.testing.assert_close(values, found.sum(dim=-1), atol=1e-5, rtol=0)


@needs_faiss
def test_ivf_build_is_deterministic() -> None:
    x, y = _clustered(2000)
    search = FaissSearch(index="ivf", nprobe=2)
    first, second = search.knn(x, y, 5), search.knn(x, y, 5)
    assert torch.equal(first[1], second[1])
    other = FaissSearch(index="ivf", nprobe=2, seed=1).knn(x, y, 5)[1]
    assert other.shape == first[1].shape


@needs_faiss
def test_ivf_that_finds_fewer_than_k_pads() -> None:
    x, y = _clustered(400, clusters=10)
    search = FaissSearch(index="ivf", nlist=10, nprobe=1)
    values, indices = search.knn(x, y, 300)  # one list holds far fewer
    missing = indices < 0
    assert missing.any() and (indices[~missing] < 400).all()
    assert torch.isneginf(values[missing]).all()
    assert torch.isfinite(values[~missing]).all()
    # Candidates keep the -1 and drop their identifiers.
    ids = [f"t{j}" for j in range(400)]
    out = alignment_candidates(
        x, y, 300, metric="cosine", target_ids=ids, search=search
    )
    assert torch.equal(out.target_index, indices)
    assert [len(row) for row in out.target_ids] == (~missing).sum(dim=1).tolist()


@needs_faiss
def test_describe() -> None:
    assert FaissSearch().describe(10**6) == {"index": "Flat"}
    hnsw = FaissSearch(index="hnsw").describe(10**6)
    assert hnsw == {"index": "HNSW32,Flat", "ef_search": 200}
    ivf = FaissSearch(index="ivf").describe(10**6)
    assert ivf == {"index": f"IVF{round(4 * math.sqrt(10**6))},Flat", "nprobe": 64}
    # nlist is at most one list per 40 rows, nprobe at most nlist.
    small = FaissSearch(index="ivf", nlist=500)
    assert small.describe(800) == {"index": "IVF20,Flat", "nprobe": 20}


@needs_faiss
def test_repr_and_validation() -> None:
    assert repr(FaissSearch()) == "FaissSearch(index='flat', list_size=100)"
    search = FaissSearch(index="ivf", nprobe=16, list_size=50)
    expected = "FaissSearch(index='ivf', nlist=None, nprobe=16, list_size=50)"
    assert repr(search) == expected
    expected = "FaissSearch(index='hnsw', hnsw_m=32, ef_search=200, list_size=100)"
    assert repr(FaissSearch(index="hnsw")) == expected
    with pytest.raises(ValueError, match="index must be"):
        FaissSearch(index="lsh")
    for bad in ({"nprobe": 0}, {"list_size": 0}, {"nlist": 0}, {"hnsw_m": 0}):
        with pytest.raises(ValueError, match=">= 1"):
            FaissSearch(**bad)


@needs_faiss
def test_resolve_search() -> None:
    assert resolve_search("exact") is None
    search = resolve_search("faiss", {"nprobe": 8})
    assert isinstance(search, FaissSearch) and search.nprobe == 8
    assert resolve_search(search) is search
    with pytest.raises(ValueError, match="search must be"):
        resolve_search("lsh")
    with pytest.raises(ValueError, match="search_kwargs go with search='faiss'"):
        resolve_search("exact", {"nprobe": 8})
    with pytest.raises(ValueError, match="search_kwargs go with search='faiss'"):
        resolve_search(search, {"nprobe": 8})


def test_missing_faiss_says_how_to_install(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss" or name.startswith("faiss."):
            raise ModuleNotFoundError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "faiss", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_faiss)
    message = (
        r"search='faiss' needs the faiss package: pip install 'almea-pyg\[faiss\]'"
    )
    with pytest.raises(ImportError, match=message):
        import_faiss()
    x, y = _random()
    with pytest.raises(ImportError, match=message):
        alignment_candidates(x, y, 3, search="faiss")
    links = torch.arange(10).repeat(2, 1)
    with pytest.raises(ImportError, match=message):
        evaluate_alignment(x, y, links, search="faiss")
    # The exact default needs no faiss.
    assert alignment_candidates(x, y, 3).search == {"backend": "exact"}
    assert set(evaluate_alignment(x, y, links)) == {"hits@1", "hits@10", "mrr"}
