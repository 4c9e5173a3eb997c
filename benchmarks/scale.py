"""Cost against size: data, a mini-batch epoch, embedding, evaluation and DS3
selection on the synthetic pair from 30k to 1M entities per side, with the
fitted exponent of each.

    python benchmarks/scale.py --sizes 30000 100000 300000 1000000 --threads 1

Each size runs in a fresh process (this script re-invoked with a hidden
``--worker`` flag), so that its peak memory is its own. In it, one stage after
another, each timed, with the peak resident memory it reached:

- ``data``: :func:`~almea_pyg.data.synthetic.make_synthetic_pair` with
  ``num_entities=N`` (power-law degrees, modalities missing at the generator's
  rates), split into seed / pool / test links;
- ``train``: the model of :func:`~almea_pyg.pipeline.experiment.build_model`
  and one mini-batch epoch of :class:`~almea_pyg.train.Trainer` (``--fanouts``,
  ``--batch-size``; ``--full-forward``: each step's forward values from the
  whole graph, that pass every ``--full-forward-every`` steps);
- ``embed``: :meth:`~almea_pyg.models.ALMEA.embed` of every entity;
- ``evaluation``: CSLS ranks of ``--eval-links`` test links among all test
  targets (:func:`~almea_pyg.metrics.evaluate_alignment`, ``--search``);
- ``selection``: :func:`~almea_pyg.select.ds3_acquire` of 1 % of the links
  from the mutual nearest neighbours of the entities neither labelled nor in a
  test link (``--search``; ``--prune`` keeps the most confident part of that
  pool; DS3 in blocks of ``--block-size``), the search's and DS3's seconds
  apart.

Writes ``benchmarks/results/scale.json`` (the protocol, every stage at every
size, and ``cost = a N^b`` fitted by least squares on the log-log points) after
each size, and a log-log plot of the seconds and peak memory against ``N``.
``--keep`` keeps the sizes the file already holds (e.g. to add 1M later) that
searched, pruned and trained as asked now. ``--faiss-index ivf`` (or ``hnsw``) makes
the searches approximate: the exact lists of selection's mutual nearest
neighbours cost N^2.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import statistics
import sys
import time
from argparse import SUPPRESS
from pathlib import Path
from typing import Any, Callable

import torch
import torch_geometric
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import (  # noqa: E402
    RESULT_PREFIX,
    _run_child,
    _status_mib,
    measure,
    mem_available_gib,
)

from almea_pyg.data.synthetic import make_synthetic_pair  # noqa: E402
from almea_pyg.io import atomic_write_text  # noqa: E402
from almea_pyg.metrics import evaluate_alignment  # noqa: E402
from almea_pyg.models import ALMEA  # noqa: E402
from almea_pyg.models.inputs import PairInputs  # noqa: E402
from almea_pyg.pipeline.experiment import ExperimentConfig, build_model  # noqa: E402
from almea_pyg.select import DS3Acquisition, candidate_pool, ds3_acquire  # noqa: E402
from almea_pyg.train.memory import limit_heap_fragmentation  # noqa: E402
from almea_pyg.train.trainer import Trainer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "scale_cost.png"
STAGES = ("data", "train", "embed", "evaluation", "selection")


def stage(
    result: dict[str, Any], name: str, call: Callable[[], Any], partial: Path | None
) -> Any:
    """Run ``call`` as stage ``name``: :func:`measure`'s seconds and added peak,
    and the process's peak so far. ``result`` so far goes to ``partial`` after
    the stage, so that a worker killed later keeps the stages it finished."""
    logging.info("n=%d %s: started", result["n"], name)
    out, result[name] = measure(call)
    result[name]["peak_rss_mib"] = peak = _status_mib("VmHWM")
    if partial is not None:
        atomic_write_text(json.dumps(result), partial)
    logging.info(
        "n=%d %s: %.1f s, peak RSS %.0f MiB",
        result["n"],
        name,
        result[name]["seconds"],
        peak,
    )
    return out


def subgraph_sizes(
    trainer: Trainer, batch_size: int, batches: int = 3
) -> dict[str, float]:
    """Mean nodes and edges of the sampled subgraphs of the first ``batches``
    batches of seed links (draws seeded 0): what a step's cost grows with."""
    links = trainer.train_links[:, : batches * batch_size].split(batch_size, dim=1)
    generator = torch.Generator().manual_seed(0)
    subs = [trainer.sample(batch, generator) for batch in links]
    return {
        "batches": len(subs),
        "nodes": statistics.mean(sub.node_index.numel() for sub in subs),
        "edges": statistics.mean(sub.edge_index.size(1) for sub in subs),
    }


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The top-k search of evaluation and selection: exact, or a faiss index."""
    if args.search == "exact":
        return {"search": "exact"}
    return {"search": "faiss", "search_kwargs": {"index": args.faiss_index}}


def full_forward_text(args: argparse.Namespace) -> str:
    """The protocol's words for ``--full-forward`` (empty without it)."""
    if not args.full_forward:
        return ""
    every = args.full_forward_every
    return ", whole-graph forward values" + (
        "" if every == 1 else f" (a pass every {every} steps)"
    )


def search_name(args: argparse.Namespace) -> str:
    """How a size's top-k lists were searched (a kept size must match)."""
    return args.search if args.search == "exact" else f"faiss {args.faiss_index}"


def worker(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """The stages at ``n`` entities per side up to ``args.until``, in this
    process."""
    limit_heap_fragmentation()
    result: dict[str, Any] = {
        "n": n,
        "search": search_name(args),
        "prune": args.prune,
        "full_forward": args.full_forward,
        "full_forward_every": args.full_forward_every,
        "sparse": args.sparse,
    }
    run = functools.partial(stage, result, partial=args.partial)
    pair = run(
        "data",
        lambda: make_synthetic_pair(num_entities=n, seed=args.seed).split(
            args.seed_ratio, seed=args.seed, pool_ratio=args.pool_ratio
        ),
    )
    torch.manual_seed(args.seed)
    config = ExperimentConfig(
        seed=args.seed, progress=False, model={"sparse": True} if args.sparse else {}
    )

    subgraph: dict[str, float] = {}

    def train() -> tuple[ALMEA, PairInputs, Tensor, list[dict[str, Any]]]:
        trainer = Trainer(
            build_model(config, pair),
            pair,
            lr=config.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=False,
            fanouts=args.fanouts,
            full_forward=args.full_forward,
            full_forward_every=args.full_forward_every,
        )
        trainer.fit(args.epochs)
        subgraph.update(subgraph_sizes(trainer, args.batch_size))
        # the optimiser's state (two copies of the parameters) goes with the
        # trainer: the later stages need the model, its inputs and the seeds
        return trainer.model, trainer.inputs, trainer.train_links, trainer.history

    result["threads"] = torch.get_num_threads()
    if args.until == "data":
        return result
    model, inputs, train_links, history = run("train", train)
    epochs = [row["seconds"] for row in history]
    result["train"]["seconds_per_epoch"] = statistics.median(epochs)
    result["train"]["subgraph"] = subgraph
    test = pair.test_links
    result["sizes"] = {
        "entities": list(pair.num_entities),
        "graph_edges": int(inputs.edge_index.size(1)),
        "links": int(pair.links.size(1)),
        "train_links": int(pair.train_links.size(1)),
        "test_links": int(test.size(1)),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if args.until == "train":
        return result
    emb_s, emb_t = run("embed", lambda: model.embed(inputs))
    if args.until == "embed":
        return result
    links = test[:, : args.eval_links]
    metrics = run(
        "evaluation",
        lambda: evaluate_alignment(
            emb_s,
            emb_t,
            links,
            candidates=test[1],
            metric="csls",
            **search_options(args),
        ),
    )
    result["evaluation"]["metrics"] = metrics
    if args.until == "evaluation":
        return result
    budget = max(1, round(0.01 * pair.links.size(1)))
    split: dict[str, float] = {}

    def select() -> DS3Acquisition:
        # the stage's two parts, timed apart (wall and CPU seconds); not with
        # measure(), whose reset of the peak RSS would hide the stage's peak
        start, cpu_start = time.perf_counter(), time.process_time()
        pool = candidate_pool(
            emb_s,
            emb_t,
            exclude_source=torch.cat([train_links[0], test[0]]),
            exclude_target=torch.cat([train_links[1], test[1]]),
            prune=args.prune,
            **search_options(args),
        )
        searched, cpu_searched = time.perf_counter(), time.process_time()
        picked = ds3_acquire(
            emb_s, emb_t, train_links, budget, block_size=args.block_size, pool=pool
        )
        split.update(
            search_seconds=searched - start,
            search_cpu_seconds=cpu_searched - cpu_start,
            ds3_seconds=time.perf_counter() - searched,
            ds3_cpu_seconds=time.process_time() - cpu_searched,
        )
        return picked

    picked = run("selection", select)
    result["selection"].update(
        split,
        budget=budget,
        pool=len(picked.pool),
        selected=int(picked.source_index.numel()),
        blocks=None if picked.blocks is None else len(picked.blocks),
    )
    if picked.result is not None:
        result["selection"].update(
            admm_iterations=int(picked.result.num_iterations.max()),
            converged=bool(picked.result.converged.all()),
        )
    return result


def fit_exponent(sizes: list[int], costs: list[float]) -> dict[str, float] | None:
    """``cost = a n^b`` by least squares on ``log cost`` against ``log n``."""
    points = [(math.log(n), math.log(c)) for n, c in zip(sizes, costs) if c > 0]
    if len(points) < 2:
        return None
    mean_x = statistics.mean(x for x, _ in points)
    mean_y = statistics.mean(y for _, y in points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return {"exponent": b, "coefficient": math.exp(mean_y - b * mean_x)}


def ran_through(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sizes whose stages up to ``--until`` ran (a failed one holds
    ``"failed"``)."""
    return [run for run in runs if "failed" not in run]


def fits(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fitted exponent of every stage's seconds (over the sizes that ran it)
    and of the peak memory."""
    done = ran_through(runs)
    out = {}
    for name in STAGES:
        ran = [run for run in done if name in run]
        out[f"{name}_seconds"] = fit_exponent(
            [run["n"] for run in ran], [run[name]["seconds"] for run in ran]
        )
    trained = [run for run in done if "train" in run]
    out["train_seconds_per_epoch"] = fit_exponent(
        [run["n"] for run in trained],
        [run["train"]["seconds_per_epoch"] for run in trained],
    )
    out["peak_rss_mib"] = fit_exponent(
        [run["n"] for run in done], [peak_rss_mib(run) for run in done]
    )
    return out


def peak_rss_mib(run: dict[str, Any]) -> float:
    """The highest resident memory over the stages ``run`` holds."""
    return max(run[name]["peak_rss_mib"] for name in STAGES if name in run)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    """Seconds of each stage and the peak memory against ``n``, log-log."""
    from matplotlib.figure import Figure

    done = ran_through(runs)
    if not done:
        logging.warning("no size ran through: no plot")
        return
    sizes = [run["n"] for run in done]
    fig = Figure(figsize=(9, 3.6))
    seconds, memory = fig.subplots(1, 2)
    for name in STAGES:
        ran = [run for run in done if name in run]
        seconds.plot(
            [run["n"] for run in ran],
            [run[name]["seconds"] for run in ran],
            "o-",
            label=name,
        )
    memory.plot(sizes, [peak_rss_mib(run) / 1024 for run in done], "o-")
    for axes, label in ((seconds, "seconds"), (memory, "peak RSS (GiB)")):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("entities per side (latent N)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
    seconds.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def protocol(args: argparse.Namespace, load: list[float]) -> dict[str, Any]:
    pruned = ""
    if args.prune is not None:
        pruned = f"pruned to its most confident {args.prune:g} (App. B.6), "
    return {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(),
        "machine_note": args.machine_note,
        "load_average_1min_before_after": load,
        "mem_available_gib_at_start": args.mem_available_gib,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "dataset": f"make_synthetic_pair(num_entities=n, seed={args.seed}) "
        "(n latent entities; each side keeps ~90 % of them)",
        "split": f"seed ratio {args.seed_ratio}, pool ratio {args.pool_ratio} "
        "(links in no split), the rest test; seed "
        f"{args.seed}",
        "train": f"build_model defaults (ALMEA, dim 300), {args.epochs} epoch(s), "
        f"batch {args.batch_size} seed links, fan-outs {args.fanouts}"
        f"{full_forward_text(args)}"
        f"{', sparse entity-table gradients (RowSparseAdam)' if args.sparse else ''}"
        "; the stage "
        "includes building the model and the trainer; subgraph: mean nodes and "
        "edges of the first three batches' sampled subgraphs (draws seeded 0)",
        "embed": "model.embed of every entity (batched after the GAT)",
        "evaluation": f"CSLS, left to right, the first {args.eval_links} test "
        f"links ranked among all test targets, search: {search_name(args)}",
        "selection": "ds3_acquire (paper's alpha 0.35), budget 1 % of the links, "
        "pool: mutual nearest neighbours of the entities neither labelled nor in "
        f"a test link (no test link can be selected), search: {search_name(args)}, "
        f"{pruned}blocks of {args.block_size}",
        "time": "seconds: wall clock; cpu_seconds: CPU time of the worker's "
        "threads (rows measured beside other jobs grow in wall time, not in CPU "
        "time; rows before it was recorded lack it)",
        "memory": "peak_rss_mib: the process's peak resident memory at the end "
        "of the stage; peak_added_mib: above its resident level before the stage",
        "stages": f"up to {args.until} (a size holds the stages it ran)",
        "fit": "cost = a n^b, least squares on log cost against log n, over the "
        "sizes that ran the stage",
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=[30_000, 100_000, 300_000, 1_000_000]
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-ratio", type=float, default=0.2)
    parser.add_argument("--pool-ratio", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=3500)
    parser.add_argument("--fanouts", nargs="+", type=int, default=[10, 10])
    parser.add_argument(
        "--full-forward",
        action="store_true",
        help="each step's forward values from the whole graph (Trainer "
        "full_forward), the gradients from the sample",
    )
    parser.add_argument(
        "--full-forward-every",
        type=int,
        default=1,
        metavar="K",
        help="with --full-forward: the whole-graph pass every K steps (default: 1)",
    )
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="the entity table's gradient as sparse rows, its Adam steps applied "
        "lazily (ALMEA(sparse=True), RowSparseAdam)",
    )
    parser.add_argument("--eval-links", type=int, default=2000)
    parser.add_argument("--search", choices=["exact", "faiss"], default="faiss")
    parser.add_argument(
        "--faiss-index",
        choices=["flat", "hnsw", "ivf"],
        default="flat",
        help="with --search faiss: flat (exact) or an approximate index",
    )
    parser.add_argument("--block-size", type=int, default=2000)
    parser.add_argument(
        "--prune",
        type=float,
        default=None,
        help="DS3 keeps this top fraction of its candidate pool (App. B.6; "
        "default: all of it)",
    )
    parser.add_argument(
        "--until",
        choices=STAGES,
        default=STAGES[-1],
        help="run the stages up to this one (each needs the ones before it)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--machine-note", default="shared with other jobs (expect timing noise)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the sizes --out already holds (run only the others)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="the log-log plot (default: docs/scale_cost.png for the default "
        "--out, else beside --out with the suffix .png)",
    )
    parser.add_argument("--worker", type=int, help=SUPPRESS)
    parser.add_argument("--partial", type=Path, help=SUPPRESS)
    return parser.parse_args(argv)


def _worker_argv(args: argparse.Namespace, n: int) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n)]
    for name in ("seed", "seed_ratio", "pool_ratio", "epochs", "batch_size"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    argv += ["--fanouts", *map(str, args.fanouts), "--search", args.search]
    argv += ["--faiss-index", args.faiss_index]
    argv += ["--eval-links", str(args.eval_links)]
    argv += ["--block-size", str(args.block_size), "--until", args.until]
    argv += ["--partial", str(_partial_path(args, n))]
    if args.prune is not None:
        argv += ["--prune", str(args.prune)]
    if args.full_forward:
        argv += ["--full-forward", "--full-forward-every", str(args.full_forward_every)]
    if args.sparse:
        argv += ["--sparse"]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    return argv


def _partial_path(args: argparse.Namespace, n: int) -> Path:
    """Where the worker at ``n`` leaves the stages it finished."""
    return args.out.with_name(f"{args.out.stem}.{n}.partial.json")


def run_size(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Every stage at ``n`` in a worker process; a worker that fails keeps the
    stages it finished beside ``"failed"``."""
    partial = _partial_path(args, n)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    run = _run_child(_worker_argv(args, n), echo=True)
    if "failed" in run and partial.exists():
        run = {**json.loads(partial.read_text()), **run}
    partial.unlink(missing_ok=True)
    return {"n": n, **run}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.plot is None:  # a run written elsewhere leaves the docs' figure alone
        args.plot = PLOT if args.out == RESULTS else args.out.with_suffix(".png")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.worker is not None:
        result = worker(args.worker, args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return result
    args.mem_available_gib = mem_available_gib()
    load_before = os.getloadavg()[0]
    kept = {}
    if args.keep and args.out.exists():
        kept = {
            run["n"]: run
            for run in json.loads(args.out.read_text())["sizes"]
            if "failed" not in run
            and run.get("search", "faiss flat") == search_name(args)
            and run.get("prune") == args.prune
            and run.get("full_forward", False) == args.full_forward
            and run.get("full_forward_every", 1) == args.full_forward_every
            and run.get("sparse", False) == args.sparse
        }
    runs: list[dict[str, Any]] = []
    report: dict[str, Any] = {}
    for n in args.sizes:
        run = kept.get(n) or run_size(args, n)
        runs.append(run)
        runs.sort(key=lambda run: run["n"])
        report = {
            "protocol": protocol(args, [load_before, os.getloadavg()[0]]),
            "sizes": runs,
            "fit": fits(runs),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        logging.info("n=%d done: %s", n, run.get("failed", "ok"))
    plot(runs, args.plot)
    return report


if __name__ == "__main__":
    main()
