"""ALMEA training speed and memory against a dense-adjacency GAT; evaluation at scale.

Training: the FB15K-DB15K pair at 20 % seeds (or ``--dataset synthetic``), the ALMEA
model of :func:`almea_pyg.pipeline.experiment.build_model`, full-batch epochs with the
library's :class:`~almea_pyg.train.Trainer`. Each implementation of the structural
encoder's GAT layers runs in its own process (this script re-invoked with a hidden
``--worker`` flag), so that the process's peak resident memory is its own:

- ``library``: the model as built (:class:`~almea_pyg.nn.conv.CSRGATConv`);
- ``dense``: :class:`DenseGATConv` below, a GAT the way research scripts write it,
  with an ``N x N`` adjacency and ``N x N`` attention per head;
- ``gatconv``: PyG's stock :class:`~torch_geometric.nn.GATConv`.

The layer class reaches the structural encoder through ``ExperimentConfig.model``
(``{"gat": cls}`` -> ``ALMEA(gat=...)`` -> ``StructuralEncoder(conv=...)``). All
implementations start from the same seed, so the same initial weights and the same
LSL masks: their per-epoch losses should agree.

Mini-batch training (``--fanouts 10 10``, ``--batch-size``): the library's model
trained by a :class:`~almea_pyg.train.Trainer` with ``fanouts``, each step's GAT
on the batch's sampled neighbourhood; the worker also reports the sampled nodes
and edges per step and the time and added peak memory of one full-graph
embedding (``model.embed``, what evaluation runs). With ``--synthetic-entities``
it runs at any size:

    python benchmarks/train_speed.py --dataset synthetic --synthetic-entities 33333 \
        --implementations library --fanouts 10 10 --batch-size 3500 --epochs 1 \
        --warmup 0 --eval-sizes --threads 1 --out benchmarks/results/minibatch.json

Evaluation: random unit-norm embeddings, ``n`` per side; the first ``n`` rows of
both sides (or the first ``--eval-links``) are the gold links, ranked against all
``n`` targets by :func:`~almea_pyg.metrics.evaluate_alignment` (chunked) and by the
full similarity matrix then ranking, with cosine and CSLS, each in its own process.

    python benchmarks/train_speed.py --data-dir ../shared/data/mmkg --quiet

Writes ``benchmarks/results/train_speed.json`` with the protocol and the numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from argparse import SUPPRESS
from collections import deque
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
import torch_geometric
from torch import Tensor, nn
from torch_geometric.nn import GATConv
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.inits import glorot, zeros

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.metrics import evaluate_alignment
from almea_pyg.nn.conv import CSRGATConv
from almea_pyg.pipeline.experiment import ExperimentConfig, build_model, prepare_pair
from almea_pyg.train.memory import limit_heap_fragmentation, peak_memory_mib
from almea_pyg.train.sampling import pyg_sampling_available
from almea_pyg.train.trainer import Trainer

RESULTS = Path(__file__).resolve().parent / "results" / "train_speed.json"
GIB = 2**30
RESULT_PREFIX = "RESULT "

#: Bytes per attention coefficient (per layer and head) of a dense GAT training
#: step: 8 kept for backward (the float32 pre-activation logits and softmax
#: output) and the forward and backward temporaries held beside them. Measured
#: here: 2-layer encoder, forward + backward, ru_maxrss delta of 26.4 N^2 bytes at
#: N = 12,000 (27.4 at 8,000), i.e. about 12.7 per entry plus the adjacency.
DENSE_GAT_BYTES_PER_ENTRY = 13
#: Bytes per node pair of the boolean adjacency shared by the layers.
DENSE_ADJACENCY_BYTES_PER_ENTRY = 1
#: What the rest of the ALMEA training step needs besides the dense attention.
DENSE_OTHER_GIB = 2.0


class DenseGATConv(nn.Module):
    r"""A GAT layer with a dense ``N x N`` adjacency, as research scripts write it.

    The adjacency is built once from ``edge_index`` (self-loops replaced by one per
    node, as :class:`~torch_geometric.nn.GATConv` does) and shared by every layer.
    For destination ``i`` and source ``j``,
    :math:`e_{ij} = \mathrm{LeakyReLU}(a_{dst}^\top W h_i + a_{src}^\top W h_j)`,
    masked to the adjacency and soft-maxed over the row,
    :math:`h'_i = \sum_j \alpha_{ij} W h_j`. Same constructor and parameter names
    as ``GATConv`` (so ``load_state_dict`` copies weights across), same result on
    graphs without duplicate edges (a dense adjacency counts an edge once).

    Args:
        in_channels (int): Input size.
        out_channels (int): Output size per head.
        heads (int): Attention heads. (default: ``1``)
        concat (bool): Concatenate the heads, else average them.
            (default: ``True``)
        negative_slope (float): LeakyReLU slope. (default: ``0.2``)
        dropout (float): Dropout on the attention coefficients. (default: ``0.0``)
        add_self_loops (bool): Must be ``True``. (default: ``True``)
        bias (bool): Add a learnable bias. (default: ``True``)
        **kwargs: The rest of ``GATConv``'s arguments, at their defaults only.

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, edge indices :math:`(2, E)`
        - **output:** :math:`(N, H \cdot C)` with ``concat=True``, else :math:`(N, C)`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: int | None = None,
        fill_value: Any = "mean",
        bias: bool = True,
        residual: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or edge_dim is not None or residual:
            raise NotImplementedError(
                "DenseGATConv supports int in_channels, no edge_dim, no residual"
            )
        if not add_self_loops:
            raise NotImplementedError("DenseGATConv always adds self-loops")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.negative_slope = negative_slope
        self.dropout = dropout
        self.lin = Linear(
            in_channels, heads * out_channels, bias=False, weight_initializer="glorot"
        )
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        out_size = heads * out_channels if concat else out_channels
        self.bias = nn.Parameter(torch.empty(out_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        glorot(self.att_src)
        glorot(self.att_dst)
        zeros(self.bias)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        num_nodes, H, C = x.size(0), self.heads, self.out_channels
        not_adjacent = dense_non_adjacency(edge_index, num_nodes)
        h = self.lin(x).view(num_nodes, H, C)
        a_src = (h * self.att_src).sum(dim=-1).t()  # (H, N)
        a_dst = (h * self.att_dst).sum(dim=-1).t()
        e = F.leaky_relu(a_dst[:, :, None] + a_src[:, None, :], self.negative_slope)
        e = e.masked_fill(not_adjacent, float("-inf"))
        alpha = torch.softmax(e, dim=-1)  # (H, N, N), rows are destinations
        alpha = F.dropout(alpha, self.dropout, self.training)
        out = (alpha @ h.transpose(0, 1)).transpose(0, 1)  # (N, H, C)
        out = out.reshape(num_nodes, H * C) if self.concat else out.mean(dim=1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads})"
        )


_ADJACENCY: list[tuple[Tensor, int, int, Tensor]] = []


def dense_non_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Boolean ``(N, N)`` mask, ``True`` where node ``j`` does not send to ``i``.

    Built once per graph (the last one is kept) with every self-loop present.

    Shapes:
        edge_index: ``(2, E)`` -> ``(N, N)`` bool
    """
    if _ADJACENCY:
        ref, version, n, mask = _ADJACENCY[0]
        unchanged = n == num_nodes and ref._version == version
        if unchanged and (ref is edge_index or torch.equal(ref, edge_index)):
            return mask
    mask = torch.ones(num_nodes, num_nodes, dtype=torch.bool, device=edge_index.device)
    mask[edge_index[1], edge_index[0]] = False
    mask.fill_diagonal_(False)
    _ADJACENCY[:] = [(edge_index, edge_index._version, num_nodes, mask)]
    return mask


IMPLEMENTATIONS: dict[str, type[nn.Module]] = {
    "library": CSRGATConv,
    "dense": DenseGATConv,
    "gatconv": GATConv,
}


def dense_training_gib(num_nodes: int, *, layers: int, heads: int) -> float:
    """Estimated memory (GiB) of an ALMEA training step with :class:`DenseGATConv`."""
    per_pair = layers * heads * DENSE_GAT_BYTES_PER_ENTRY
    per_pair += DENSE_ADJACENCY_BYTES_PER_ENTRY
    return num_nodes**2 * per_pair / GIB + DENSE_OTHER_GIB


def dense_ranking_gib(rows: int, cols: int) -> float:
    """Estimated memory (GiB) of ranking with the full ``rows x cols`` matrix.

    Per entry: the float32 similarity, the boolean comparison with the true
    scores and its int64 count (``sum`` over a boolean matrix upcasts it): 13
    bytes (13.1 measured at ``n = 10,000``). Links whose sources are not distinct
    and sorted add a row-gathered copy (4 more).
    """
    return rows * cols * 13 / GIB


def mem_available_gib() -> float:
    """``MemAvailable`` of ``/proc/meminfo`` in GiB (``inf`` where unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return float("inf")


def memory_guard(needed_gib: float, limit_gib: float) -> str | None:
    """Why a run needing ``needed_gib`` must be skipped, or ``None`` if it fits."""
    available = mem_available_gib()
    if needed_gib <= min(limit_gib, available):
        return None
    return (
        f"would need ~{needed_gib:.1f} GiB, {available:.1f} GiB available, "
        f"--max-dense-gib {limit_gib:g}"
    )


# --------------------------------------------------------------------- training


def train_worker(impl: str, args: argparse.Namespace) -> dict[str, Any]:
    """Build, (maybe) train and measure one implementation in this process.

    Every implementation runs with the heap settings of the library's runs
    (:func:`~almea_pyg.train.memory.limit_heap_fragmentation`).
    """
    limit_heap_fragmentation()
    config = ExperimentConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        seed_ratio=args.seed_ratio,
        seed=args.seed,
        model={"gat": IMPLEMENTATIONS[impl]},
        progress=False,
    )
    start = time.perf_counter()
    if args.dataset == "synthetic" and args.synthetic_entities is not None:
        pair = make_synthetic_pair(num_entities=args.synthetic_entities, seed=args.seed)
        pair = pair.split(args.seed_ratio, seed=args.seed)
    else:
        pair = prepare_pair(config)
    torch.manual_seed(config.seed)
    model = build_model(config, pair)
    encoder = model.structure
    num_nodes = sum(pair.num_entities)
    sizes = {
        "num_entities": list(pair.num_entities),
        "gat_nodes": num_nodes,
        "gat_edges": int(model.inputs(pair).edge_index.size(1)),
        "train_links": int(pair.train_links.size(1)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "setup_s": time.perf_counter() - start,
    }
    if impl == "dense":
        needed = dense_training_gib(
            num_nodes, layers=encoder.num_layers, heads=encoder.heads
        )
        reason = memory_guard(needed, args.max_dense_gib)
        if reason is not None:
            return {"skipped": reason, "estimated_gib": needed, **sizes}
    trainer = Trainer(
        model,
        pair,
        lr=config.lr,
        batch_size=args.batch_size or max(2, pair.train_links.size(1)),
        seed=config.seed,
        progress=False,
        fanouts=args.fanouts,
    )
    subgraphs = _record_subgraphs(trainer)
    rss_before = peak_memory_mib()
    trainer.fit(args.warmup)
    trainer.fit(args.epochs)
    seconds = [row["seconds"] for row in trainer.history]
    timed = seconds[args.warmup :]
    result = {
        **sizes,
        "conv": encoder.convs[0].__class__.__name__,
        "batch_size": trainer.batch_size,
        "fanouts": args.fanouts,
        "seconds_per_epoch": statistics.median(timed),
        "epoch_seconds": timed,
        "warmup_seconds": seconds[: args.warmup],
        "losses": [row["loss"] for row in trainer.history],
        "peak_rss_mib": peak_memory_mib(),
        "train_peak_rss_delta_mib": peak_memory_mib() - rss_before,
        "threads": torch.get_num_threads(),
    }
    if subgraphs:
        nodes, edges = zip(*subgraphs)
        result["steps_per_epoch"] = len(subgraphs) // (args.warmup + args.epochs)
        result["subgraph_nodes_mean"] = statistics.mean(nodes)
        result["subgraph_edges_mean"] = statistics.mean(edges)
        reset = _reset_peak_rss()
        before = _status_mib("VmRSS") if reset else peak_memory_mib()
        start = time.perf_counter()
        model.embed(trainer.inputs)
        result["embed_seconds"] = time.perf_counter() - start
        after = _status_mib("VmHWM") if reset else peak_memory_mib()
        result["embed_peak_added_mib"] = after - before
    return result


def _record_subgraphs(trainer: Trainer) -> list[tuple[int, int]]:
    """The nodes and edges of every subgraph the trainer's sampler will draw
    (none for full-graph training)."""
    sizes: list[tuple[int, int]] = []
    sampler = trainer.sampler
    if sampler is None:
        return sizes

    def recording(seeds: Tensor, generator: torch.Generator | None = None) -> Any:
        sub = sampler(seeds, generator)
        sizes.append((sub.node_index.numel(), sub.edge_index.size(1)))
        return sub

    trainer.sampler = recording
    return sizes


def train_section(args: argparse.Namespace) -> dict[str, Any]:
    """Every implementation in its own process, then the dense/library ratios."""
    results = {}
    for impl in args.implementations:
        cmd = [*_common_argv(args), "--worker", impl]
        cmd += ["--dataset", args.dataset, "--cache-dir", args.cache_dir]
        cmd += ["--seed-ratio", str(args.seed_ratio), "--seed", str(args.seed)]
        cmd += ["--epochs", str(args.epochs), "--warmup", str(args.warmup)]
        cmd += ["--max-dense-gib", str(args.max_dense_gib)]
        if args.synthetic_entities is not None:
            cmd += ["--synthetic-entities", str(args.synthetic_entities)]
        if args.batch_size is not None:
            cmd += ["--batch-size", str(args.batch_size)]
        if args.fanouts is not None:
            cmd += ["--fanouts", *map(str, args.fanouts)]
        if args.data_dir is not None:
            cmd += ["--data-dir", args.data_dir]
        results[impl] = _run_child(cmd)
        logging.info("%s: %s", impl, _summary(results[impl]))
    out: dict[str, Any] = {"implementations": results}
    out["ratios"] = {
        f"{impl}/library": _ratios(results[impl], results.get("library"))
        for impl in results
        if impl != "library"
    }
    return out


def _ratios(res: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("seconds_per_epoch", "peak_rss_mib", "train_peak_rss_delta_mib")
    if ref is None or any(k not in res or k not in ref for k in keys):
        return {"unavailable": "both runs must have completed"}
    out: dict[str, Any] = {
        "time": res["seconds_per_epoch"] / ref["seconds_per_epoch"],
        "peak_memory": res["peak_rss_mib"] / ref["peak_rss_mib"],
        "train_memory": res["train_peak_rss_delta_mib"]
        / max(ref["train_peak_rss_delta_mib"], 1e-9),
    }
    out["loss_max_rel_diff"] = max(
        abs(a - b) / max(abs(b), 1e-12) for a, b in zip(res["losses"], ref["losses"])
    )
    return out


# ------------------------------------------------------------------- evaluation


def synthetic_embeddings(
    n: int, dim: int, *, noise: float, seed: int
) -> tuple[Tensor, Tensor]:
    """Unit-norm ``x`` and ``y = normalize(x + noise * g / sqrt(dim))``, ``n`` rows."""
    gen = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
    y = x + noise * torch.randn(n, dim, generator=gen) / dim**0.5
    return x, F.normalize(y, dim=-1)


def dense_evaluate(
    x_src: Tensor,
    x_tgt: Tensor,
    links: Tensor,
    *,
    metric: str = "cosine",
    csls_k: int = 3,
    ks: tuple[int, ...] = (1, 10),
    candidates: Tensor | None = None,
) -> dict[str, float]:
    """Hits@k and MRR (%) from the full similarity matrix (the naive reference).

    Every source of ``links`` against every candidate target (default: the
    targets of ``links``), CSLS neighbourhoods among those, as
    :func:`~almea_pyg.metrics.evaluate_alignment` ranks them.

    Shapes:
        x_src: ``(N_S, d)``, x_tgt: ``(N_T, d)``, links: ``(2, L)``,
        candidates: ``(C,)``
    """
    sources, row = torch.unique(links[0], return_inverse=True)
    targets = torch.unique(links[1] if candidates is None else candidates)
    col = torch.searchsorted(targets, links[1])
    sim = F.normalize(x_src[sources], dim=-1) @ F.normalize(x_tgt[targets], dim=-1).t()
    if metric == "csls":
        k = min(csls_k, sim.size(1))
        r_src = sim.topk(k, dim=1).values.mean(dim=1)
        r_tgt = sim.topk(min(csls_k, sim.size(0)), dim=0).values.mean(dim=0)
        sim.mul_(2).sub_(r_src[:, None]).sub_(r_tgt[None])
    identity = torch.equal(row, torch.arange(row.numel(), device=row.device))
    scores = sim if identity else sim[row]
    ranks = (scores > scores.gather(1, col[:, None])).sum(dim=1) + 1
    out = {f"hits@{k}": 100 * (ranks <= k).double().mean().item() for k in ks}
    out["mrr"] = 100 * ranks.double().reciprocal().mean().item()
    return out


def eval_worker(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time one ``n,implementation,metric`` evaluation in this process."""
    n_str, impl, metric = spec.split(",")
    n = int(n_str)
    x, y = synthetic_embeddings(n, args.eval_dim, noise=args.eval_noise, seed=args.seed)
    num_links = n if args.eval_links is None else min(n, args.eval_links)
    links, candidates = torch.arange(num_links).repeat(2, 1), torch.arange(n)
    evaluate = evaluate_alignment if impl == "chunked" else dense_evaluate

    def call() -> dict[str, float]:
        return evaluate(
            x, y, links, metric=metric, csls_k=args.csls_k, candidates=candidates
        )

    times, peaks, metrics = [], [], {}
    for _ in range(args.eval_repeats):
        reset = _reset_peak_rss()
        before = _status_mib("VmRSS") if reset else peak_memory_mib()
        start = time.perf_counter()
        metrics = call()
        times.append(time.perf_counter() - start)
        peaks.append((_status_mib("VmHWM") if reset else peak_memory_mib()) - before)
    return {
        "seconds": statistics.median(times),
        "all_seconds": times,
        "peak_added_mib": max(peaks),
        "metrics": metrics,
        "threads": torch.get_num_threads(),
    }


def eval_section(args: argparse.Namespace) -> dict[str, Any]:
    """Chunked and dense evaluation per size and metric, each in its own process."""
    sizes = []
    for n in args.eval_sizes:
        num_links = n if args.eval_links is None else min(n, args.eval_links)
        entry: dict[str, Any] = {"n": n, "links": num_links}
        for metric in ("cosine", "csls"):
            for impl in args.eval_implementations:
                key = f"{impl}_{metric}"
                if impl == "dense":
                    needed = dense_ranking_gib(num_links, n)
                    reason = memory_guard(needed, args.max_dense_gib)
                    if reason is not None:
                        entry[key] = {
                            "skipped": f"does not fit: {reason}",
                            "estimated_gib": needed,
                        }
                        continue
                cmd = [*_common_argv(args), "--eval-worker", f"{n},{impl},{metric}"]
                cmd += ["--eval-dim", str(args.eval_dim), "--seed", str(args.seed)]
                cmd += ["--eval-noise", str(args.eval_noise)]
                cmd += ["--csls-k", str(args.csls_k)]
                cmd += ["--eval-repeats", str(args.eval_repeats)]
                if args.eval_links is not None:
                    cmd += ["--eval-links", str(args.eval_links)]
                env = {"MALLOC_MMAP_THRESHOLD_": "131072"}
                entry[key] = _run_child(cmd, env=env)
                logging.info("n=%d %s: %s", n, key, _summary(entry[key]))
            chunked, dense = (
                entry.get(f"chunked_{metric}"),
                entry.get(f"dense_{metric}"),
            )
            if chunked and dense and "metrics" in chunked and "metrics" in dense:
                entry[f"{metric}_metrics_max_abs_diff"] = max(
                    abs(chunked["metrics"][k] - dense["metrics"][k])
                    for k in chunked["metrics"]
                )
                entry[f"{metric}_time_ratio_dense_over_chunked"] = (
                    dense["seconds"] / chunked["seconds"]
                )
        sizes.append(entry)
    return {"sizes": sizes}


# ---------------------------------------------------------------------- helpers


def _common_argv(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve())]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return argv


def _run_child(
    cmd: list[str], env: dict[str, str] | None = None, echo: bool = False
) -> dict[str, Any]:
    """Run a worker process; its result, or why it produced none. With ``echo``
    the worker's log lines reach this process's stderr as they come (a long
    worker shows which stage it is in)."""
    tail: deque[str] = deque(maxlen=40)
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in proc.stderr:
            tail.append(line)
            if echo:
                sys.stderr.write(line)
                sys.stderr.flush()
        returncode = proc.wait()
        stdout.seek(0)
        lines = stdout.read().splitlines()
    for line in reversed(lines):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return {
        "failed": f"worker exited with status {returncode}",
        "stderr_tail": "".join(tail)[-2000:],
    }


def _summary(res: dict[str, Any]) -> str:
    if "seconds_per_epoch" in res:
        return (
            f"{res['seconds_per_epoch']:.2f} s/epoch, peak RSS "
            f"{res['peak_rss_mib']:.0f} MiB"
        )
    if "seconds" in res:
        return f"{res['seconds']:.2f} s, +{res['peak_added_mib']:.0f} MiB"
    return res.get("skipped") or res.get("failed", "?")


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(call: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """``call()``, its wall seconds, the CPU seconds of this process's threads
    (on a shared machine the wall time of a one-thread worker grows, its CPU time
    does not) and its peak RSS above the level before it."""
    reset = _reset_peak_rss()
    before = _status_mib("VmRSS") if reset else _status_mib("VmHWM")
    start, cpu_start = time.perf_counter(), time.process_time()
    out = call()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    peak = _status_mib("VmHWM") - before
    return out, {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_added_mib": peak}


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def protocol(args: argparse.Namespace, load: list[float]) -> dict[str, Any]:
    return {
        "machine": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(),
        "quiet": args.quiet,
        "machine_note": "quiet (no other jobs)"
        if args.quiet
        else "shared with other jobs (expect timing noise)",
        "load_average_1min_before_after": load,
        "mem_available_gib_at_start": args.mem_available_gib,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "training": {
            "dataset": args.dataset,
            "seed_ratio": args.seed_ratio,
            "seed": args.seed,
            "epochs_timed": args.epochs,
            "warmup_epochs_untimed": args.warmup,
            "batch": (
                f"{args.batch_size} seed links per Adam step"
                if args.batch_size
                else "full batch (all seed links, one Adam step per epoch)"
            ),
            "graph": (
                "full graph every step"
                if args.fanouts is None
                else f"mini-batch: each step's GAT on the batch's sampled "
                f"neighbourhood, fan-outs {args.fanouts} "
                f"(NeighborSampling backend "
                f"{'pyg' if pyg_sampling_available() else 'torch'})"
            ),
            "model": "build_model defaults (ALMEA, dim 300, 2 GAT layers, 1 head)",
            "timing": "median wall seconds per epoch (Trainer history) after the "
            "untimed warm-up epochs (they build the CSR / dense adjacency)",
            "memory": "peak_rss_mib: ru_maxrss of the worker process (data, model "
            "and training); train_peak_rss_delta_mib: its growth during training",
            "dense": "DenseGATConv of this script: bool N x N adjacency shared by "
            "the layers, (heads, N, N) float32 logits and attention per layer",
            "max_dense_gib": args.max_dense_gib,
            "implementations": args.implementations,
        },
        "evaluation": {
            "embeddings": f"n x {args.eval_dim} unit-norm Gaussian x, y = "
            f"normalize(x + {args.eval_noise:g} * g / sqrt(d)), seed {args.seed}",
            "links": "the first n rows of both sides"
            if args.eval_links is None
            else f"the first min(n, {args.eval_links}) rows of both sides",
            "candidates": "all n targets",
            "csls_k": args.csls_k,
            "repeats": args.eval_repeats,
            "chunked": "almea_pyg.metrics.evaluate_alignment (1024 rows at a time)",
            "dense": "full links x n similarity matrix, then ranks (run where "
            "the estimate fits memory)",
            "timing": "wall seconds of one call, median over repeats",
            "memory": "peak RSS above the level before the call (VmHWM after "
            "clear_refs) in a fresh process with MALLOC_MMAP_THRESHOLD_=131072",
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="FB15K_DB15K")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--synthetic-entities",
        type=int,
        default=None,
        help="entities per side of --dataset synthetic (default: its own, 2000)",
    )
    parser.add_argument("--cache-dir", default="data")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="seed links per step (default: all, one step per epoch)",
    )
    parser.add_argument(
        "--fanouts",
        type=int,
        nargs="+",
        default=None,
        help="mini-batch training: neighbours sampled per hop (default: full graph)",
    )
    parser.add_argument("--seed-ratio", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--implementations",
        nargs="*",
        default=["library", "dense"],
        choices=list(IMPLEMENTATIONS),
    )
    parser.add_argument("--max-dense-gib", type=float, default=20.0)
    parser.add_argument("--eval-sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument(
        "--eval-implementations",
        nargs="*",
        default=["chunked", "dense"],
        choices=["chunked", "dense"],
    )
    parser.add_argument("--eval-links", type=int, default=None)
    parser.add_argument("--eval-dim", type=int, default=300)
    parser.add_argument("--eval-noise", type=float, default=3.0)
    parser.add_argument("--eval-repeats", type=int, default=1)
    parser.add_argument("--csls-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="the machine is quiet")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=SUPPRESS)
    parser.add_argument("--eval-worker", help=SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.eval_repeats < 1:
        parser.error("need --epochs >= 1, --warmup >= 0 and --eval-repeats >= 1")
    if args.batch_size is not None and args.batch_size < 2:
        parser.error("need --batch-size >= 2")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker or args.eval_worker:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        if args.worker:
            result = train_worker(args.worker, args)
        else:
            result = eval_worker(args.eval_worker, args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return result
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.mem_available_gib = mem_available_gib()
    load_before = os.getloadavg()[0]
    report: dict[str, Any] = {}
    if args.implementations:
        report["training"] = train_section(args)
    if args.eval_sizes:
        report["evaluation"] = eval_section(args)
    report = {"protocol": protocol(args, [load_before, os.getloadavg()[0]]), **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
