"""Candidates and evaluation at scale: exact chunked search against faiss top-k lists.

Synthetic clustered embeddings, ``n`` entities per side, ``d = 300``: clusters of
``--cluster-size`` entities around random unit centres, source ``x = normalize(c +
spread * g / sqrt(d))``, its counterpart ``y = normalize(x + noise * g' / sqrt(d))``
(row ``i`` of both sides is a gold link). Per size, each in its own process
(this script re-invoked with a hidden ``--worker`` flag), time and peak memory of:

- ``candidates``: :func:`~almea_pyg.metrics.alignment_candidates` (top-10, CSLS)
  of the first ``--queries`` sources among all ``n`` targets;
- ``evaluation``: :func:`~almea_pyg.metrics.evaluate_alignment` (CSLS) of the
  first ``--links`` links against all ``n`` targets;

with ``search="exact"`` (chunked, the default) and ``search="faiss"`` (the
library's default :class:`~almea_pyg.metrics.knn.FaissSearch`); recall@10 of the
faiss candidates against the exact ones. Exact runs are skipped above
``--exact-max-n`` or where their score block would not fit in memory. And
``approximate``: over the ``n`` targets, one IVF index per ``nlist`` of
``--nlist-per-sqrt * sqrt(n)`` and one HNSW graph per ``--hnsw-m``: build time and
memory, and per ``--nprobe`` (IVF) or ``--ef-search`` (HNSW) the search time of
the queries' cosine top-10 and its recall against the exact top-10.

    python benchmarks/knn_speed.py --threads 1

Writes ``benchmarks/results/knn_speed.json`` with the protocol and the numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
from argparse import SUPPRESS
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import (  # noqa: E402
    GIB,
    RESULT_PREFIX,
    _run_child,
    measure,
    mem_available_gib,
)

from almea_pyg.metrics import (  # noqa: E402
    FaissSearch,
    alignment_candidates,
    evaluate_alignment,
    topk_similarity,
)
from almea_pyg.metrics.knn import import_faiss  # noqa: E402
from almea_pyg.metrics.similarity import DEFAULT_CHUNK_SIZE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "knn_speed.json"
TASKS = ("candidates", "evaluation")
#: Score blocks an exact evaluation holds at once (scores, the links' rows of
#: them, the comparison and its count): 1.9 GiB measured at 100k targets.
EXACT_BLOCKS = 5
K = 10
#: Freed blocks go back to the system, so that VmHWM shows each call's own peak.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def clustered_embeddings(
    n: int,
    dim: int,
    *,
    cluster_size: int,
    spread: float,
    noise: float,
    seed: int,
    block: int = 65536,
) -> tuple[Tensor, Tensor]:
    """Unit-norm ``x`` around ``n // cluster_size`` random unit centres and
    ``y = normalize(x + noise * g / sqrt(dim))``, built ``block`` rows at a time.

    Shapes:
        -> x, y: ``(n, dim)`` float32
    """
    gen = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(max(1, n // cluster_size), dim, generator=gen))
    x, y = torch.empty(n, dim), torch.empty(n, dim)
    for start in range(0, n, block):
        rows = min(block, n - start)
        cluster = torch.randint(centres.size(0), (rows,), generator=gen)
        noisy = (
            centres[cluster] + spread * torch.randn(rows, dim, generator=gen) / dim**0.5
        )
        x[start : start + rows] = F.normalize(noisy)
        noisy = (
            x[start : start + rows]
            + noise * torch.randn(rows, dim, generator=gen) / dim**0.5
        )
        y[start : start + rows] = F.normalize(noisy)
    return x, y


def exact_chunk_size(n: int, block_gib: float) -> int:
    """Rows of the exact search's score blocks against ``n`` targets: the
    library's default, fewer where a float32 block would exceed ``block_gib``."""
    return max(1, min(DEFAULT_CHUNK_SIZE, int(block_gib * GIB / (4 * n))))


def task_worker(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time one ``n,task,search`` in this process."""
    n_str, task, search = spec.split(",")
    x, y = embeddings(int(n_str), args)
    chunk_size = exact_chunk_size(y.size(0), args.exact_block_gib)
    if search in ("hnsw", "ivf"):
        search = FaissSearch(index=search)
    options = {"metric": "csls", "search": search, "chunk_size": chunk_size}
    if task in ("candidates", "candidates_all"):
        num = x.size(0) if task == "candidates_all" else min(args.queries, x.size(0))
        sources = torch.arange(num)
        out, result = measure(
            lambda: alignment_candidates(x, y, K, sources=sources, **options)
        )
        hits = (out.target_index == sources[:, None]).any(dim=1).double().mean()
        result.update(search=out.search, top10=out.target_index.tolist())
        result["chunk_size"] = chunk_size
        result["true_target_in_top10"] = hits.item()
    else:
        links = torch.arange(min(args.links, x.size(0))).repeat(2, 1)
        candidates = torch.arange(y.size(0))
        out, result = measure(
            lambda: evaluate_alignment(x, y, links, candidates=candidates, **options)
        )
        result["search"] = out.pop("search", {"backend": "exact"})
        result["chunk_size"] = chunk_size
        result["metrics"] = out
    return result


def index_worker(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Build each approximate index over the targets; search the queries with
    every search parameter."""
    x, y = embeddings(n, args)
    queries = x[: args.queries]
    chunk_size = exact_chunk_size(n, args.exact_block_gib)
    (_, exact), timing = measure(
        lambda: topk_similarity(queries, y, K, chunk_size=chunk_size)
    )
    result: dict[str, Any] = {"exact_cosine_top10": timing, "indexes": []}
    kinds = [("ivf", "nlist", round(m * math.sqrt(n))) for m in args.nlist_per_sqrt]
    kinds += [("hnsw", "hnsw_m", m) for m in args.hnsw_m]
    for kind, name, value in kinds:
        options = {"index": kind, name: max(1, value)}
        index, build = measure(partial(FaissSearch(**options).build, y))
        factory = FaissSearch(**options).describe(n)["index"]
        entry: dict[str, Any] = {"index": factory, "build": build, "search": {}}
        parameter = "nprobe" if kind == "ivf" else "ef_search"
        for setting in args.nprobe if kind == "ivf" else args.ef_search:
            search = FaissSearch(**options, **{parameter: setting}).search
            (_, found), timing = measure(partial(search, index, queries, K))
            timing["recall@10"] = recall(found, exact)
            gold = torch.arange(queries.size(0))[:, None]
            timing["true_target_in_top10"] = (
                (found == gold).any(dim=1).double().mean().item()
            )
            entry["search"][f"{parameter}={setting}"] = timing
        result["indexes"].append(entry)
        del index
    return result


def recall(found: Tensor, exact: Tensor) -> float:
    """Mean share of each row of ``exact`` that ``found`` holds too."""
    same = (found[:, :, None] == exact[:, None, :]) & (exact[:, None, :] >= 0)
    return same.any(dim=1).double().mean().item()


def embeddings(n: int, args: argparse.Namespace) -> tuple[Tensor, Tensor]:
    return clustered_embeddings(
        n,
        args.dim,
        cluster_size=args.cluster_size,
        spread=args.spread,
        noise=args.noise,
        seed=args.seed,
    )


def size_section(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every task and search at ``n`` targets per side, each in its own process."""
    entry: dict[str, Any] = {"n": n}
    tasks = TASKS if n > args.all_sources_max_n else (*TASKS, "candidates_all")
    for task in tasks:
        searches = ["exact", "faiss"]
        if task == "candidates_all":
            searches += args.all_sources_approximate
        runs = {}
        for search in searches:
            reason = exact_skip_reason(n, args) if search == "exact" else None
            if reason is not None:
                runs[search] = {"skipped": reason}
            else:
                cmd = [*_worker_argv(args), f"{n},{task},{search}"]
                runs[search] = _run_child(cmd, env=WORKER_ENV)
            logging.info("n=%d %s %s: %s", n, task, search, _summary(runs[search]))
        exact = runs["exact"]
        for search in searches[1:]:
            if "top10" in exact and "top10" in runs[search]:
                runs[f"{search}_recall@10"] = recall(
                    torch.tensor(runs[search]["top10"]), torch.tensor(exact["top10"])
                )
        if "metrics" in exact and "metrics" in runs["faiss"]:
            runs["metrics_max_abs_diff"] = max(
                abs(exact["metrics"][key] - runs["faiss"]["metrics"][key])
                for key in exact["metrics"]
            )
        for search in searches:
            runs[search].pop("top10", None)
        entry[task] = runs
    if args.nlist_per_sqrt or args.hnsw_m:
        cmd = [*_worker_argv(args), f"{n},index,faiss"]
        entry["approximate"] = _run_child(cmd, env=WORKER_ENV)
        logging.info("n=%d approximate: %s", n, _summary(entry["approximate"]))
    return entry


def exact_skip_reason(n: int, args: argparse.Namespace) -> str | None:
    """Why the exact search at ``n`` targets is not run, or ``None``."""
    if n > args.exact_max_n:
        return f"skipped: n > --exact-max-n {args.exact_max_n}"
    block = exact_chunk_size(n, args.exact_block_gib) * n * 4 / GIB
    needed, available = EXACT_BLOCKS * block, mem_available_gib()
    if needed > available / 2:
        return f"skipped: needs ~{needed:.1f} GiB, {available:.1f} GiB available"
    return None


def _worker_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve())]
    argv += ["--dim", str(args.dim), "--cluster-size", str(args.cluster_size)]
    argv += ["--spread", str(args.spread), "--noise", str(args.noise)]
    argv += ["--seed", str(args.seed), "--queries", str(args.queries)]
    argv += ["--links", str(args.links), "--nprobe", *map(str, args.nprobe)]
    argv += ["--nlist-per-sqrt", *map(str, args.nlist_per_sqrt)]
    argv += ["--hnsw-m", *map(str, args.hnsw_m)]
    argv += ["--ef-search", *map(str, args.ef_search)]
    argv += ["--exact-block-gib", str(args.exact_block_gib)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return [*argv, "--worker"]


def _summary(res: dict[str, Any]) -> str:
    if "seconds" in res:
        return f"{res['seconds']:.2f} s, +{res['peak_added_mib']:.0f} MiB"
    if "indexes" in res:
        return ", ".join(
            f"{e['index']}: build {e['build']['seconds']:.1f} s" for e in res["indexes"]
        )
    return res.get("skipped") or res.get("failed", "?")


def protocol(args: argparse.Namespace, load: list[float]) -> dict[str, Any]:
    faiss = import_faiss()
    default = FaissSearch()
    return {
        "machine": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(),
        "machine_note": "shared with other jobs (expect timing noise)",
        "load_average_1min_before_after": load,
        "mem_available_gib_at_start": args.mem_available_gib,
        "torch": torch.__version__,
        "faiss_version": faiss.__version__,
        "embeddings": f"n x {args.dim} per side, clusters of {args.cluster_size} "
        f"around random unit centres, x = normalize(c + {args.spread:g} g / sqrt(d)),"
        f" y = normalize(x + {args.noise:g} g' / sqrt(d)), seed {args.seed}; "
        "row i of both sides is a gold link",
        "candidates": f"alignment_candidates(k={K}, metric='csls') of the first "
        f"{args.queries} sources among all n targets",
        "evaluation": f"evaluate_alignment(metric='csls') of the first {args.links}"
        " links, candidates: all n targets",
        "candidates_all": f"as candidates, for all n sources (n <= "
        f"{args.all_sources_max_n})",
        "exact": "search='exact': chunked, chunk_size = the library's "
        f"{DEFAULT_CHUNK_SIZE} rows or fewer so that a float32 score block stays "
        f"under {args.exact_block_gib:g} GiB (the chunk_size field); run up to "
        f"--exact-max-n {args.exact_max_n} where {EXACT_BLOCKS} blocks fit half "
        "the available memory",
        "faiss": f"search='faiss' with the defaults: {default!r}; hnsw / ivf "
        "(candidates_all only): search=FaissSearch(index='hnsw' / 'ivf'), the "
        "other defaults unchanged (the search field states them)",
        "recall": "<search>_recall@10: mean share of each source's exact top-10 "
        "CSLS candidates in its faiss top-10; true_target_in_top10: share of "
        "sources whose gold target is among their 10 candidates",
        "approximate": "FaissSearch(index='ivf', nlist=round(m sqrt(n))) for m in "
        f"{args.nlist_per_sqrt} (build: k-means on 40 nlist rows, then add) and "
        f"FaissSearch(index='hnsw', hnsw_m=m) for m in {args.hnsw_m} (faiss's "
        "efConstruction 40): build, then per nprobe / ef_search the cosine "
        f"top-{K} of the {args.queries} sources, recall "
        "against topk_similarity's exact top-10",
        "timing": "wall seconds of one call in a fresh process",
        "memory": "peak RSS above the level before the call (VmHWM after "
        "clear_refs): the search's own memory, not the embeddings'",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000]
    )
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--cluster-size", type=int, default=50)
    parser.add_argument("--spread", type=float, default=0.5)
    parser.add_argument("--noise", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--links", type=int, default=2000)
    parser.add_argument("--exact-max-n", type=int, default=1_000_000)
    parser.add_argument(
        "--exact-block-gib",
        type=float,
        default=1.0,
        help="largest score block of the exact search (sets its chunk_size)",
    )
    parser.add_argument(
        "--all-sources-max-n",
        type=int,
        default=100_000,
        help="also time the candidates of every source up to this size",
    )
    parser.add_argument("--nprobe", nargs="*", type=int, default=[8, 16, 32, 64, 128])
    parser.add_argument("--nlist-per-sqrt", nargs="*", type=float, default=[1, 4])
    parser.add_argument("--hnsw-m", nargs="*", type=int, default=[32])
    parser.add_argument(
        "--all-sources-approximate",
        nargs="*",
        default=["hnsw"],
        choices=["hnsw", "ivf"],
        help="approximate indexes (library defaults) also timed on all sources",
    )
    parser.add_argument("--ef-search", nargs="*", type=int, default=[32, 64, 128, 256])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        import_faiss().omp_set_num_threads(args.threads)
    if args.worker:
        n, task, _ = args.worker.split(",")
        if task == "index":
            result = index_worker(int(n), args)
        else:
            result = task_worker(args.worker, args)
        result["threads"] = torch.get_num_threads()
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return result
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.mem_available_gib = mem_available_gib()
    load_before = os.getloadavg()[0]
    sizes = [size_section(n, args) for n in args.sizes]
    report = {"protocol": protocol(args, [load_before, os.getloadavg()[0]])}
    report["sizes"] = sizes
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
