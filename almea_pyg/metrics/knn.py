"""Top-k search by cosine with faiss (an optional extra), exact or approximate.

The chunked search of :mod:`almea_pyg.metrics.similarity` holds ``chunk_size x
N`` score blocks. :class:`FaissSearch` searches a faiss index of the
L2-normalised rows by inner product instead: flat (exact, in small BLAS blocks)
or approximate (HNSW, IVF), and gives each query a top-k list; CSLS and
evaluation then work on these lists (:mod:`~almea_pyg.metrics.similarity`,
:mod:`~almea_pyg.metrics.ranking`). Measurements: ``docs/scale.md``. Install it
with ``pip install 'almea-pyg[faiss]'``.
"""

import math
from typing import Any, Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

SearchName = Literal["exact", "faiss"]
IndexKind = Literal["flat", "hnsw", "ivf"]

#: IVF's ``nlist`` is this times ``sqrt(N)`` unless given (faiss's guideline: 4-16).
LISTS_PER_SQRT_N = 4
#: Rows sampled per inverted list to train IVF's k-means (faiss warns below 39).
TRAIN_PER_LIST = 40


def import_faiss() -> Any:
    """The ``faiss`` module, or an ``ImportError`` that says how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "search='faiss' needs the faiss package: pip install 'almea-pyg[faiss]' "
            "(or pip install faiss-cpu)"
        ) from error
    return faiss


class FaissSearch:
    r"""Top-k lists by cosine from a faiss index, for candidates and evaluation.

    Rows are L2-normalised and searched by inner product. ``index="flat"``
    (``IndexFlatIP``) is exact, in BLAS blocks of bounded memory. Two approximate
    kinds trade recall for time once an index serves many queries: ``"hnsw"``
    (``IndexHNSWFlat``) walks a graph of ``hnsw_m`` links per row with a beam of
    ``max(ef_search, k)``; ``"ivf"`` (``IndexIVFFlat``) splits the rows into
    ``nlist`` lists by k-means and scans the ``nprobe`` lists nearest to each
    query. Both may miss a true neighbour (the scores they return are exact
    cosines): measure their recall on your embeddings against ``"flat"`` first.
    Every kind holds one float32 copy of the rows (HNSW adds ~``8 hnsw_m`` bytes
    a row for its graph). CSLS and ranking use each query's ``list_size`` nearest
    rows: a target outside the list cannot be ranked.

    Args:
        index: ``"flat"``, ``"hnsw"`` or ``"ivf"``. (default: ``"flat"``)
        hnsw_m: Links per row of an HNSW graph. (default: ``32``)
        ef_search: Beam width of an HNSW search (faiss widens it to ``k``).
            (default: ``200``)
        nlist: Inverted lists of an IVF index, at most one per
            :data:`TRAIN_PER_LIST` rows. (default: ``4 sqrt(N)``)
        nprobe: Lists an IVF search scans per query. (default: ``64``)
        list_size: Length of the cosine list of each query that CSLS re-scores
            and evaluation ranks in. (default: ``100``)
        batch_size: Rows added or searched at once; bounds the temporary memory.
            (default: ``16384``)
        seed: Seed of IVF's k-means training sample. (default: ``0``)
    """

    def __init__(
        self,
        *,
        index: IndexKind = "flat",
        hnsw_m: int = 32,
        ef_search: int = 200,
        nlist: Optional[int] = None,
        nprobe: int = 64,
        list_size: int = 100,
        batch_size: int = 16384,
        seed: int = 0,
    ) -> None:
        if index not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"index must be 'flat', 'hnsw' or 'ivf', got {index!r}")
        sizes = (hnsw_m, ef_search, nprobe, list_size, batch_size)
        if min(*sizes, 1 if nlist is None else nlist) < 1:
            raise ValueError(
                "hnsw_m, ef_search, nlist, nprobe, list_size and batch_size must "
                "be >= 1"
            )
        import_faiss()  # fail here, before any work, when faiss is missing
        self.index = index
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.nlist = nlist
        self.nprobe = nprobe
        self.list_size = list_size
        self.batch_size = batch_size
        self.seed = seed

    def describe(self, num_rows: int) -> dict[str, Any]:
        """The faiss factory string of the index over ``num_rows`` rows and its
        search parameter: ``{"index": "Flat"}``, ``{"index": "HNSW32,Flat",
        "ef_search": 200}`` or ``{"index": "IVF400,Flat", "nprobe": 64}``."""
        if self.index == "flat":
            return {"index": "Flat"}
        if self.index == "hnsw":
            return {"index": f"HNSW{self.hnsw_m},Flat", "ef_search": self.ef_search}
        nlist = self.nlist or round(LISTS_PER_SQRT_N * math.sqrt(num_rows))
        nlist = max(1, min(nlist, num_rows // TRAIN_PER_LIST))
        return {"index": f"IVF{nlist},Flat", "nprobe": min(self.nprobe, nlist)}

    def build(self, base: Tensor) -> Any:
        """A faiss index over the normalised rows of ``base`` (an IVF one trained
        on ``TRAIN_PER_LIST * nlist`` rows drawn with :attr:`seed`).

        Shapes:
            base: ``(N, d)``
        """
        faiss = import_faiss()
        factory = self.describe(base.size(0))["index"]
        index = faiss.index_factory(base.size(1), factory, faiss.METRIC_INNER_PRODUCT)
        if factory.startswith("IVF"):
            gen = torch.Generator().manual_seed(self.seed)
            sample = torch.randperm(base.size(0), generator=gen)
            sample = sample[: TRAIN_PER_LIST * index.nlist].sort().values
            index.cp.min_points_per_centroid = 1  # the sample's size is chosen
            index.train(_as_faiss(base[sample.to(base.device)]))
        for start in range(0, base.size(0), self.batch_size):
            index.add(_as_faiss(base[start : start + self.batch_size]))
        return index

    def search(self, index: Any, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Cosine and row of the ``k`` best rows of ``index`` for each query, best
        first; ``-inf`` and ``-1`` where an approximate index found fewer.

        Shapes:
            queries: ``(N_q, d)`` -> values, indices: ``(N_q, min(k, N))``
        """
        if hasattr(index, "nprobe"):
            index.nprobe = self.nprobe
        if hasattr(index, "hnsw"):
            index.hnsw.efSearch = self.ef_search
        k = min(k, index.ntotal)
        values = torch.full((queries.size(0), k), float("-inf"))
        indices = torch.full((queries.size(0), k), -1, dtype=torch.long)
        for start in range(0, queries.size(0) if k > 0 else 0, self.batch_size):
            end = start + self.batch_size
            found, rows = index.search(_as_faiss(queries[start:end]), k)
            values[start:end] = torch.from_numpy(found)
            indices[start:end] = torch.from_numpy(rows)
        values.masked_fill_(indices < 0, float("-inf"))
        device = queries.device
        return values.to(device, queries.dtype), indices.to(device)

    def knn(self, queries: Tensor, base: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """:meth:`search` in an index built over ``base``.

        Shapes:
            queries: ``(N_q, d)``, base: ``(N, d)`` -> ``(N_q, min(k, N))`` twice
        """
        return self.search(self.build(base), queries, k)

    def __repr__(self) -> str:
        options = {
            "flat": "",
            "hnsw": f", hnsw_m={self.hnsw_m}, ef_search={self.ef_search}",
            "ivf": f", nlist={self.nlist}, nprobe={self.nprobe}",
        }[self.index]
        return (
            f"{self.__class__.__name__}(index={self.index!r}{options}, "
            f"list_size={self.list_size})"
        )


def resolve_search(
    search: Union[SearchName, FaissSearch],
    search_kwargs: Optional[dict[str, Any]] = None,
) -> Optional[FaissSearch]:
    """``None`` for ``"exact"``, else the :class:`FaissSearch` that ``search``
    is or names (built with ``search_kwargs``)."""
    if search == "faiss":
        return FaissSearch(**(search_kwargs or {}))
    if search != "exact" and not isinstance(search, FaissSearch):
        raise ValueError(
            f"search must be 'exact', 'faiss' or a FaissSearch, got {search!r}"
        )
    if search_kwargs:
        raise ValueError(f"search_kwargs go with search='faiss', not {search!r}")
    return None if search == "exact" else search


def _as_faiss(x: Tensor) -> Any:
    """Normalised rows of ``x`` as the contiguous float32 array faiss takes."""
    return F.normalize(x.detach().float().cpu(), dim=-1).contiguous().numpy()
