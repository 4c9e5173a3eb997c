"""DS3 sparsity: representatives / K against α, per λ rule and ρ rule, K = 200-4,000.

Pools come from clustered random embeddings with a known number of clusters (not
from a trained model): ``n_clusters = K // 50`` centres ``3·N(0, I_32)``, source
entities ``centre + N(0, I)``, each target a copy ``+ 0.3·N(0, I)``, 20 % of the
pairs labelled; the pool is the library's mutual-nearest-neighbour pool (cosine),
cut to its ``K`` most confident pairs, with ``A`` (Eq. 5) and ``D`` (Eqs. 6-7) as
:func:`~almea_pyg.select.ds3_acquire` builds them. For each run it records the
representatives, λ / λ_max, iterations, convergence, and how many of the picks
(``budget`` = 5 % of the pool) are among the ``budget`` most confident pairs.

    python benchmarks/ds3_sparsity.py            # writes the JSON and the plot

Writes ``benchmarks/results/ds3_sparsity.json`` and ``docs/ds3_sparsity.png``.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from almea_pyg.select.dissimilarity import (
    dissimilarity_matrix,
    diversity_scores,
    pair_embeddings,
)
from almea_pyg.select.ds3 import ds3, lambda_max
from almea_pyg.select.pool import candidate_pool

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ds3_sparsity.json"
PLOT = ROOT / "docs" / "ds3_sparsity.png"
#: α grid per pool size (fewer points at the sizes where a run takes minutes).
ALPHAS = {
    200: [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 2.0],
    500: [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 2.0],
    1000: [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0],
    2000: [0.05, 0.2, 0.35, 0.7, 1.0],
    4000: [0.1, 0.35, 1.0],
}
#: (λ rule, ρ rule, dissimilarity): the old default, the paper's λ solved with
#: adaptive ρ, and the relative rule.
CONFIGS = [
    ("paper", "fixed", "paper"),
    ("paper", "adaptive", "paper"),
    ("relative", "adaptive", "paper"),
]
#: The public code's setting, run once per size: λ = 0.5, its CSLS-based A.
CODE_LAMBDA = 0.5


def make_pool(K: int, *, seed: int = 0, d: int = 32, labelled: float = 0.2):
    """Clustered pair embeddings → the ``K`` most confident pool pairs' A and D."""
    g = torch.Generator().manual_seed(seed)
    n_clusters = max(4, K // 50)
    L = int(labelled * K)
    N = int(1.15 * K) + L
    centres = 3 * torch.randn(n_clusters, d, generator=g)
    source = centres[torch.randint(0, n_clusters, (N,), generator=g)]
    source = source + torch.randn(N, d, generator=g)
    perm = torch.randperm(N, generator=g)
    target = torch.empty_like(source)
    target[perm] = source + 0.3 * torch.randn(N, d, generator=g)
    seeds = torch.stack([torch.arange(L), perm[:L]])
    pool = candidate_pool(
        source, target, exclude_source=seeds[0], exclude_target=seeds[1]
    )
    k = min(K, len(pool))
    h_s, h_t = pair_embeddings(
        source, target, pool.source_index[:k], pool.target_index[:k]
    )
    l_s, l_t = pair_embeddings(source, target, seeds[0], seeds[1])
    D = diversity_scores(h_s, h_t, l_s, l_t)
    return h_s, h_t, D, n_clusters


def run(A, D, budget, **kwargs):
    start = time.perf_counter()
    res = ds3(A, row_weights=D, **kwargs)
    seconds = time.perf_counter() - start
    K = A.size(0)
    # As ds3_acquire: the most confident representatives (lowest pool positions).
    picks = res.representatives.sort().values[:budget]
    uniform = float((res.Z - 1.0 / K).abs().max()) < 1e-3
    return {
        "representatives": len(res.representatives),
        "fraction": round(len(res.representatives) / K, 5),
        "lam": round(float(res.lam), 5),
        "iterations": int(res.num_iterations),
        "converged": bool(res.converged),
        "final_rho": round(float(res.rho), 4),
        "uniform_Z": uniform,
        "picks": len(picks),
        "picks_in_top_budget": int((picks < budget).sum()),
        "seconds": round(seconds, 2),
    }


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    for ax, (lam_rule, rho_rule, _) in zip(axes, CONFIGS):
        for K in sorted({r["K"] for r in rows}):
            sel = [
                r
                for r in rows
                if r["K"] == K
                and r["lam_rule"] == lam_rule
                and r["rho_rule"] == rho_rule
            ]
            ax.plot(
                [r["alpha"] for r in sel],
                [r["fraction"] for r in sel],
                marker="o",
                label=f"K={K}",
            )
            for r in sel:
                if not r["converged"]:
                    ax.plot(r["alpha"], r["fraction"], "kx", ms=8)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="α",
            title=f'λ rule "{lam_rule}", ρ {rho_rule}',
        )
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("representatives / K")
    axes[0].legend()
    fig.suptitle("DS3 on clustered pools (K/50 clusters); x: not converged in 1000 it.")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def save(args, sizes, rows) -> None:
    result = {
        "protocol": {
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_at_end": os.getloadavg(),
            "pools": "clustered random embeddings, K // 50 clusters of 32-d points "
            "(centres 3 N(0, I), points centre + N(0, I)), target = source + 0.3 "
            "N(0, I), 20 % labelled; the library's mutual-NN pool (cosine) cut to "
            "its K most confident pairs; A Eq. 5, D Eqs. 6-7 (sigma 3); float32; "
            "seed 0",
            "solver": f"ds3, tol 1e-7, max_iter {args.max_iter}, rho 0.1 initial",
            "representatives": "rows with norm >= 0.1 max row norm",
            "picks": "the budget (5 % of K) most confident representatives, as "
            "ds3_acquire; picks_in_top_budget counts those among the budget most "
            "confident pool pairs (all of them = DS3 reduced to a confidence sort)",
            "uniform_Z": "max |Z - 1/K| < 1e-3",
            "code": f"lam_rule 'code' (lambda = {CODE_LAMBDA}, the public code's "
            "--lambda_), A from CSLS distances (csls_k 3), adaptive rho",
            "timing": "seconds on a shared machine (other jobs running): indicative "
            "only",
        },
        "sizes": sizes,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(ALPHAS))
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, sizes = [], []
    for K in args.sizes:
        h_s, h_t, D, n_clusters = make_pool(K)
        A = dissimilarity_matrix(h_s, h_t)
        K_pool, budget = A.size(0), max(1, A.size(0) // 20)
        lam_max = float(lambda_max(A, D))
        sizes.append(
            {
                "K": K_pool,
                "n_clusters": n_clusters,
                "budget": budget,
                "lam_max": lam_max,
            }
        )
        for lam_rule, rho_rule, dissimilarity in CONFIGS:
            for alpha in ALPHAS.get(K, ALPHAS[1000]):
                row = run(
                    A,
                    D,
                    budget,
                    alpha=alpha,
                    lam_rule=lam_rule,
                    rho_rule=rho_rule,
                    max_iter=args.max_iter,
                )
                row.update(K=K_pool, lam_rule=lam_rule, rho_rule=rho_rule, alpha=alpha)
                row.update(dissimilarity=dissimilarity)
                row["lam_over_lam_max"] = round(row["lam"] / lam_max, 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
        A_code = dissimilarity_matrix(h_s, h_t, csls_k=3)
        row = run(A_code, D, budget, alpha=CODE_LAMBDA, lam_rule="code",
                  rho_rule="adaptive", max_iter=args.max_iter)  # fmt: skip
        row.update(K=K_pool, lam_rule="code", rho_rule="adaptive", alpha=CODE_LAMBDA)
        row.update(dissimilarity="csls")
        row["lam_over_lam_max"] = round(CODE_LAMBDA / float(lambda_max(A_code, D)), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
        save(args, sizes, rows)  # after every size, so a long run keeps its results
    plot(rows, args.plot)


if __name__ == "__main__":
    main()
