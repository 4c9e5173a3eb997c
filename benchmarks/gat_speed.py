"""GATConv versus CSRGATConv: full-graph forward + backward time and peak memory.

A synthetic graph of the size of FB15K-DB15K's larger side (27,629 nodes, 648,921
directed edges, power-law-like degrees; the real data is not read), a learnable
``N x d`` input embedding and a 2-layer GAT as in ALMEA's structural encoder. Each
variant runs in a fresh process so that its peak resident memory (``ru_maxrss``
after the graph and model are built, minus before) is its own. Both variants start
from the same seed and weights; the fingerprints of their outputs and input
gradients are compared.

    python benchmarks/gat_speed.py [--heads 1] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_geometric
from torch_geometric.nn import GATConv

from almea_pyg.nn.conv import CSRGATConv

VARIANTS = {"GATConv": GATConv, "CSRGATConv": CSRGATConv}
ZIPF_EXPONENT = 0.6


def synthetic_graph(num_nodes: int, num_edges: int, seed: int) -> torch.Tensor:
    """Directed edges whose endpoints are drawn with Zipf-like node weights.

    Node ``i`` (after a random relabelling) has weight ``(rank + 1) ** -0.6`` as
    both source and destination, so hubs are hubs in both directions; self-loops
    and duplicate edges occur as in real KGs.
    """
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.arange(num_nodes) + 1.0).pow(-ZIPF_EXPONENT)
    weight = weight[torch.randperm(num_nodes, generator=gen)]
    src = torch.multinomial(weight, num_edges, replacement=True, generator=gen)
    dst = torch.multinomial(weight, num_edges, replacement=True, generator=gen)
    return torch.stack([src, dst])


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_variant(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    edge_index = synthetic_graph(args.nodes, args.edges, args.seed)
    torch.manual_seed(args.seed)
    cls = VARIANTS[name]
    layers = torch.nn.ModuleList(
        cls(args.dim, args.dim // args.heads, heads=args.heads)
        for _ in range(args.layers)
    )
    x = torch.nn.Parameter(torch.randn(args.nodes, args.dim) * 0.1)
    grad_seed = torch.randn(args.nodes, args.dim)

    def step() -> tuple[float, float, float, torch.Tensor]:
        x.grad = None
        layers.zero_grad()
        cpu_start, start = time.process_time(), time.perf_counter()
        h = x
        for i, layer in enumerate(layers):
            h = layer(h, edge_index)
            if i + 1 < len(layers):
                h = F.elu(h)
        mid = time.perf_counter()
        (h * grad_seed).sum().backward()
        cpu = time.process_time() - cpu_start
        return mid - start, time.perf_counter() - mid, cpu, h.detach()

    rss_before = _max_rss_mib()
    first = step()
    forward, backward, cpu = [], [], []
    for _ in range(args.repeats):
        fwd, bwd, cpu_s, out = step()
        forward.append(fwd)
        backward.append(bwd)
        cpu.append(cpu_s)
    total = sorted(f + b for f, b in zip(forward, backward))
    queue.put(
        {
            "first_call_s": first[0] + first[1],
            "forward_s": forward,
            "backward_s": backward,
            "cpu_s": cpu,
            "median_s": total[len(total) // 2],
            "min_s": total[0],
            "peak_rss_delta_mib": _max_rss_mib() - rss_before,
            "threads": torch.get_num_threads(),
            "fingerprint": {
                "out_sum": out.double().sum().item(),
                "out_abs_sum": out.double().abs().sum().item(),
                "x_grad_abs_sum": x.grad.double().abs().sum().item(),
            },
        }
    )


def measure(name: str, args: argparse.Namespace) -> dict:
    """Runs one variant in a fresh process and returns its measurements."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_variant, args=(name, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=27_629)
    parser.add_argument("--edges", type=int, default=648_921)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS)
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "gat_speed.json",
    )
    args = parser.parse_args()

    edge_index = synthetic_graph(args.nodes, args.edges, args.seed)
    in_degree = torch.bincount(edge_index[1], minlength=args.nodes)
    load_before = os.getloadavg()[0]
    results = {name: measure(name, args) for name in args.variants}
    load_after = os.getloadavg()[0]
    for name, res in results.items():
        print(
            f"{name:>13}: median {res['median_s']:.3f} s "
            f"(min {res['min_s']:.3f} s, first call {res['first_call_s']:.3f} s, "
            f"CPU {sorted(res['cpu_s'])[len(res['cpu_s']) // 2]:.3f} s), "
            f"peak RSS +{res['peak_rss_delta_mib']:.0f} MiB"
        )
    report = {
        "protocol": {
            "task": f"{args.layers}-layer GAT forward + backward, full graph",
            "graph": "synthetic, Zipf-like endpoint weights (rank + 1) ** -0.6",
            "nodes": args.nodes,
            "edges": args.edges,
            "max_in_degree": int(in_degree.max()),
            "isolated_in": int((in_degree == 0).sum()),
            "dim": args.dim,
            "heads": args.heads,
            "out_channels_per_head": args.dim // args.heads,
            "layers": args.layers,
            "repeats": args.repeats,
            "threads": results[args.variants[0]]["threads"],
            "seed": args.seed,
            "timing": "wall seconds per repetition (forward, backward) and process "
            "CPU seconds (all threads), after one warm-up call reported as "
            "first_call_s (it builds the CSR cache)",
            "memory": "ru_maxrss delta in a fresh process per variant, after "
            "graph and model construction",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with "
            "other jobs (expect timing noise)",
            "load_average_1min": [load_before, load_after],
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
        },
        "results": results,
    }
    if {"GATConv", "CSRGATConv"} <= results.keys():
        ref, csr = results["GATConv"], results["CSRGATConv"]
        report["speedup_median"] = ref["median_s"] / csr["median_s"]
        report["memory_ratio"] = ref["peak_rss_delta_mib"] / max(
            csr["peak_rss_delta_mib"], 1e-9
        )
        report["fingerprint_max_rel_diff"] = max(
            abs(ref["fingerprint"][k] - csr["fingerprint"][k])
            / max(abs(ref["fingerprint"][k]), 1e-12)
            for k in ref["fingerprint"]
        )
        print(
            f"speed-up x{report['speedup_median']:.1f}, "
            f"memory x{report['memory_ratio']:.1f}, "
            f"fingerprint rel. diff {report['fingerprint_max_rel_diff']:.1e}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
