"""DS3 on large pools in blocks: what the split costs, and how far it scales.

On pools small enough to solve whole (``--compare`` sizes), DS3 runs on the whole
pool and on balanced blocks (:func:`~almea_pyg.select.blocks.balanced_blocks`, one
batched call), and the result reports:

- ``objective_gap``: the whole problem's objective (its own λ) at the blocks'
  block-diagonal Z, relative to its value at the whole solution;
- ``representatives_overlap``: the share of the whole solution's representatives
  the blocks also keep, and ``picks_overlap`` the same for the picks (the budget,
  5 % of the pool, most confident representatives first, as ``ds3_acquire``);
- seconds and representatives of each.

On larger pools (``--scale`` sizes) only the blocks run: seconds and peak memory.
Pools are the clustered random embeddings of ``benchmarks/ds3_sparsity.py`` (not a
trained model). A pool that is not a power of two times the block size loses its last
``K mod B`` pairs (fewer than ``B``) to the blocks; the whole problem is solved on
the same pairs.

    python benchmarks/ds3_blocks.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ds3_sparsity import make_pool  # noqa: E402

from almea_pyg.io import atomic_write_text  # noqa: E402
from almea_pyg.select.blocks import balanced_blocks  # noqa: E402
from almea_pyg.select.dissimilarity import dissimilarity_matrix  # noqa: E402
from almea_pyg.select.ds3 import ds3  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ds3_blocks.json"


def solve_blocks(h_s, h_t, D, block_size: int, **options):
    blocks = balanced_blocks(torch.cat([h_s, h_t], dim=-1), block_size)
    A = torch.stack([dissimilarity_matrix(h_s[b], h_t[b]) for b in blocks])
    result = ds3(A, row_weights=D[blocks], **options)
    reps = torch.cat([b[r] for b, r in zip(blocks, result.representatives)])
    return blocks, result, reps


def objective(A, D, lam, Z) -> float:
    return float(lam * (D * torch.linalg.vector_norm(Z, dim=-1)).sum() + (A * Z).sum())


def compare(K: int, block_size: int, budget: int, options: dict) -> dict:
    h_s, h_t, D, clusters = make_pool(K)
    # A pool short of K loses its last K mod B pairs to the blocks: both solve the rest.
    keep = balanced_blocks(torch.cat([h_s, h_t], -1), block_size).flatten().sort()[0]
    h_s, h_t, D = h_s[keep], h_t[keep], D[keep]
    A = dissimilarity_matrix(h_s, h_t)
    start = time.perf_counter()
    whole = ds3(A, row_weights=D, **options)
    whole_seconds = time.perf_counter() - start
    start = time.perf_counter()
    blocks, result, reps = solve_blocks(h_s, h_t, D, block_size, **options)
    block_seconds = time.perf_counter() - start
    Z = torch.zeros_like(A)
    for b, Zb in zip(blocks, result.Z):
        Z[b[:, None], b[None, :]] = Zb
    at_whole = objective(A, D, whole.lam, whole.Z)
    at_blocks = objective(A, D, whole.lam, Z)
    w = set(whole.representatives.tolist())
    picks_w = set(whole.representatives.sort().values[:budget].tolist())
    picks_b = set(reps.sort().values[:budget].tolist())
    return {
        "K": len(D),
        "clusters": clusters,
        "block_size": block_size,
        "blocks": blocks.size(0),
        "whole": {
            "representatives": len(w),
            "iterations": int(whole.num_iterations),
            "converged": bool(whole.converged),
            "seconds": round(whole_seconds, 2),
        },
        "in_blocks": {
            "representatives": int(reps.numel()),
            "iterations_max": int(result.num_iterations.max()),
            "converged": bool(result.converged.all()),
            "seconds": round(block_seconds, 2),
        },
        "objective_gap": round((at_blocks - at_whole) / abs(at_whole), 5),
        "representatives_overlap": round(len(w & set(reps.tolist())) / len(w), 4),
        "picks_overlap": round(len(picks_w & picks_b) / max(1, len(picks_w)), 4),
    }


def scale(K: int, block_size: int, options: dict) -> dict:
    h_s, h_t, D, clusters = make_pool(K)
    start = time.perf_counter()
    blocks, result, reps = solve_blocks(h_s, h_t, D, block_size, **options)
    return {
        "K": len(D),
        "clusters": clusters,
        "block_size": block_size,
        "blocks": blocks.size(0),
        "representatives": int(reps.numel()),
        "iterations_max": int(result.num_iterations.max()),
        "converged_blocks": int(result.converged.sum()),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib_so_far": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs="*", type=int, default=[1024, 2048])
    parser.add_argument("--block-sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--scale", nargs="*", type=int, default=[16384, 65536])
    parser.add_argument("--scale-block-size", type=int, default=2048)
    parser.add_argument(
        "--rules",
        nargs="+",
        default=["relative:0.02", "code:0.5"],
        help="lam_rule:alpha pairs (relative: each block its own λ_max; code: one λ)",
    )
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, large = [], []
    for rule in args.rules:
        name, alpha = rule.split(":")
        options = {"lam_rule": name, "alpha": float(alpha)}
        for K in args.compare:
            for block_size in args.block_sizes:
                if block_size < K:
                    rows.append(compare(K, block_size, max(1, K // 20), options))
                    rows[-1].update(options)
                    print(json.dumps(rows[-1]), flush=True)
        for K in args.scale:
            large.append(scale(K, args.scale_block_size, options))
            large[-1].update(options)
            print(json.dumps(large[-1]), flush=True)
    record = {
        "protocol": {
            "pools": "clustered random embeddings (benchmarks/ds3_sparsity.py "
            "make_pool), K most confident mutual-NN pairs, 20 % labelled; not a model",
            "rho_rule": "adaptive",
            "budget": "5 % of K",
            "dtype": "float32",
            "threads": torch.get_num_threads(),
            "machine": platform.platform(),
        },
        "compare": rows,
        "scale": large,
    }
    atomic_write_text(json.dumps(record, indent=1), args.output)


if __name__ == "__main__":
    main()
