"""DS3 speed: ``almea_pyg.select.ds3`` against a straightforward ADMM, in the same run.

The reference is the SPEC §6.4 ADMM written plainly (unscaled dual, a fresh sort of
every column for every simplex projection, one problem at a time), as the paper's
code does. Both run the same fixed number of iterations (``tol=0``) on the same
problems with the paper's fixed ρ (``rho_rule="fixed"``), so their iterates, and hence
their representatives, should be identical; the library's adaptive-ρ iteration (the
default) is timed too.

    python benchmarks/ds3_speed.py --sizes 500 1000 2000 4000 --iters 20

Writes ``benchmarks/results/ds3_speed.json`` with the protocol and the numbers.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from argparse import SUPPRESS
from pathlib import Path

import torch

from almea_pyg.select import ds3

#: Iterations of a memory measurement (the peak is reached in the first one).
MEMORY_ITERS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "ds3_speed.json"


def make_problem(K: int, *, seed: int, dtype: torch.dtype, device: str):
    """Clustered points → normalised squared distances ``A`` and weights ``D``."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(max(2, K // 50), 16, generator=g)
    x = centres[torch.randint(0, centres.size(0), (K,), generator=g)]
    x = x + torch.randn(K, 16, generator=g)
    A = torch.cdist(x, x).pow(2)
    A = A / A.max()
    D = 1 + 2 * torch.rand(K, generator=g)
    return A.to(device, dtype), D.to(device, dtype)


def sort_projection(W: torch.Tensor) -> torch.Tensor:
    """Project every column onto the simplex by sorting it (Held et al.)."""
    s = W.sort(0, descending=True).values
    cs = s.cumsum(0) - 1
    k = torch.arange(1, W.size(0) + 1, device=W.device, dtype=W.dtype)[:, None]
    r = (s - cs / k > 0).sum(0)
    theta = cs.gather(0, (r - 1)[None]) / r
    return (W - theta).clamp_min(0)


def reference_ds3(A, D, lam, *, rho=0.1, iters=20):
    """The plain ADMM of SPEC §6.4; returns P after ``iters`` iterations."""
    K = A.size(0)
    P, mu = torch.full_like(A, 1.0 / K), torch.zeros_like(A)
    for _ in range(iters):
        V = P - (mu + A) / rho
        norms = V.norm(dim=1, keepdim=True)
        Z = (1 - (lam * D[:, None] / rho) / norms).clamp_min(0) * V
        P = sort_projection(Z + mu / rho)
        mu = mu + rho * (Z - P)
    return P


def representatives(Z: torch.Tensor) -> list[int]:
    norms = Z.norm(dim=1)
    order = norms.argsort(descending=True, stable=True)
    return order[norms[order] >= 0.1 * norms.max()].tolist()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn, device: str, repeats: int):
    """Best wall time of ``fn()`` over ``repeats`` runs, and its last output."""
    times, out = [], None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times), out


def peak_memory(K: int, solver: str, args) -> float:
    """Peak memory (MiB) of one solver call on a ``K`` problem.

    On CPU it runs in a child process with ``MALLOC_MMAP_THRESHOLD_`` set, so large
    blocks come straight from ``mmap`` and freed memory leaves the RSS; the child
    reports its peak RSS (VmHWM) above the level before the call.
    """
    if args.device.startswith("cuda"):
        A, D = make_problem(
            K, seed=0, dtype=getattr(torch, args.dtype), device=args.device
        )
        return _peak(_solver(solver, A, D, args, MEMORY_ITERS), args.device)
    cmd = [sys.executable, __file__, "--memory-child", solver, "--sizes", str(K)]
    cmd += ["--dtype", args.dtype, "--alpha", str(args.alpha)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _solver(name: str, A, D, args, iters: int):
    lam = args.alpha * A.norm() / A.size(0) ** 0.5
    if name == "ds3":
        return lambda: ds3(
            A, lam=lam, row_weights=D, max_iter=iters, tol=0.0, rho_rule="fixed"
        )
    return lambda: reference_ds3(A, D, lam, iters=iters)


def _peak(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
    except OSError:
        return float("nan")
    before = _status_kib(status, "VmRSS")
    fn()
    return (_status_kib(status, "VmHWM") - before) / 1024


def _status_kib(status: Path, key: str) -> int:
    for line in status.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def bench_size(K, args, dtype):
    A, D = make_problem(K, seed=0, dtype=dtype, device=args.device)
    lam = args.alpha * A.norm() / K**0.5
    n = args.iters

    def lib(iters, rule="fixed"):
        return lambda: ds3(
            A, lam=lam, row_weights=D, max_iter=iters, tol=0.0, rho_rule=rule
        )

    t1, out = measure(lib(n), args.device, args.repeats)
    t2, _ = measure(lib(2 * n), args.device, args.repeats)
    lib_ms = 1e3 * (t2 - t1) / n  # marginal cost of one iteration
    a1, _ = measure(lib(n, "adaptive"), args.device, args.repeats)
    a2, _ = measure(lib(2 * n, "adaptive"), args.device, args.repeats)
    ref_t, ref_P = measure(lambda: reference_ds3(A, D, lam, iters=n), args.device, 1)
    mem_lib, mem_ref = peak_memory(K, "ds3", args), peak_memory(K, "reference", args)
    ref_ms = 1e3 * ref_t / n
    same = set(representatives(out.Z)) == set(representatives(ref_P))
    return {
        "K": K,
        "ds3_ms_per_iter": round(lib_ms, 3),
        "ds3_adaptive_ms_per_iter": round(1e3 * (a2 - a1) / n, 3),
        "ds3_ms_per_call_amortised": round(1e3 * t1 / n, 3),
        "reference_ms_per_iter": round(ref_ms, 3),
        "speedup": round(ref_ms / lib_ms, 2),
        "ds3_peak_mib": round(mem_lib, 1),
        "reference_peak_mib": round(mem_ref, 1),
        "memory_ratio": round(mem_ref / mem_lib, 2) if mem_lib > 0 else None,
        "same_representatives": same,
        "num_representatives": len(representatives(out.Z)),
        "max_abs_diff_Z": float((out.Z - ref_P).abs().max()),
    }


def bench_batch(args, dtype, B=8, K=500):
    problems = [
        make_problem(K, seed=s, dtype=dtype, device=args.device) for s in range(B)
    ]
    A = torch.stack([p[0] for p in problems])
    D = torch.stack([p[1] for p in problems])
    kwargs = dict(alpha=args.alpha, max_iter=args.iters, tol=0.0, rho_rule="fixed")
    batch_t, batch = measure(lambda: ds3(A, row_weights=D, **kwargs), args.device, 3)
    loop_t, loop = measure(
        lambda: [ds3(A[b], row_weights=D[b], **kwargs) for b in range(B)],
        args.device,
        3,
    )
    same = all(
        set(batch.representatives[b].tolist()) == set(loop[b].representatives.tolist())
        for b in range(B)
    )
    return {
        "shape": [B, K, K],
        "batch_ms": round(1e3 * batch_t, 2),
        "separate_calls_ms": round(1e3 * loop_t, 2),
        "speedup": round(loop_t / batch_t, 2),
        "same_representatives": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--memory-child", choices=["ds3", "reference"], help=SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        A, D = make_problem(
            args.sizes[0], seed=0, dtype=getattr(torch, args.dtype), device="cpu"
        )
        print(_peak(_solver(args.memory_child, A, D, args, MEMORY_ITERS), "cpu"))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    sizes = []
    for K in args.sizes:
        row = bench_size(K, args, dtype)
        sizes.append(row)
        print(json.dumps(row), flush=True)
    batch = None if args.no_batch else bench_batch(args, dtype)
    if batch:
        print(json.dumps(batch), flush=True)
    result = {
        "protocol": {
            "machine": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
            "device": args.device,
            "dtype": args.dtype,
            "iterations": args.iters,
            "alpha": args.alpha,
            "repeats": args.repeats,
            "timing": "ds3: marginal time per iteration, (t(2n) - t(n)) / n, best of "
            "repeats, rho_rule fixed (and adaptive, whose checks may rescale U); "
            "reference: one run of n iterations / n; tol=0 so both run "
            "exactly n iterations on the same problem",
            "memory": f"peak RSS above the level before one call of {MEMORY_ITERS} "
            "iterations, in a child process with MALLOC_MMAP_THRESHOLD_=131072 "
            "(VmHWM), or the CUDA allocator peak",
            "reference": "SPEC 6.4 ADMM, unscaled dual, sort-based projection of "
            "every column at every iteration, unbatched",
        },
        "sizes": sizes,
        "batch": batch,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
