"""Accuracy harness: the paper's Table 1 / Table 2 cells and its Table 5 t-tests.

The command line of :mod:`almea_pyg.pipeline.grid` (cells, resume, warm start),
:mod:`almea_pyg.pipeline.stats` and :mod:`almea_pyg.pipeline.report`. A cell is
one (dataset, seed ratio, variant, warm-up epochs, seed) run of
:func:`almea_pyg.pipeline.experiment.run_experiment`; the variants are
:data:`almea_pyg.pipeline.variants.HARNESS_VARIANTS` (plus ``no_<modality>``).
Every cell not yet done runs in turn (dataset, ratio, seed, then variant), each in
a fresh process so that its peak memory is its own, and writes one JSON into
``--results``. Its run directory (checkpoint, labelled links, plots: derived from
the data, never committed) goes under ``--work-dir``. Done cells are skipped; an
interrupted active-learning cell resumes from its last checkpoint. An
active-learning cell whose warm-up is a done run without active learning (same
seed and schedule) starts from that run's final checkpoint instead of training the
warm-up again: the same result, exactly (``--no-warm-start`` trains it anyway). A
pool ratio leaves the seeds, hence the warm-up, unchanged: cells with
``--pool-ratio`` start from the run without one. Active learning follows Table 9:
5 rounds every 50 epochs after the warm-up, 1 % of the links per round, DS3's
alpha per dataset and ratio; ``--prune 0.5`` keeps DS3's pool to its most
confident half, as the paper does (App. B.6).

    python benchmarks/accuracy.py --datasets FB15K_DB15K --seed-ratios 0.2 \\
        --variants almea base almea+ds3 --seeds 0 1 2 --data-dir ../shared/data/mmkg
    python benchmarks/accuracy.py --summarise --compare almea+ds3 almea

``--summarise`` writes ``summary.md`` and ``summary.json`` into ``--results``: mean
± sample std over seeds per row, next to the paper's figure
(:data:`almea_pyg.pipeline.report.PAPER_RESULTS`) where the paper has that exact
row, and the paired t-tests of ``--compare``. ``--low-resource`` runs the settings
of the paper's Section 4.5 instead of a grid:

    python benchmarks/accuracy.py --low-resource --datasets FB15K_DB15K \\
        --variants almea+ds3 --seeds 0 1 --data-dir ../shared/data/mmkg

On a machine shared with other jobs, ``--threads 1`` is often faster than torch's
default.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path

from almea_pyg.active.loop import ActiveLearningConfig
from almea_pyg.pipeline.experiment import (
    DATASETS,
    DEFAULT_DIM,
    OPTIMIZERS,
    PAPER_SCHEDULE,
)
from almea_pyg.pipeline.grid import (
    MODULE,
    Grid,
    RunOptions,
    is_done,
    run_grid,
)
from almea_pyg.pipeline.report import write_summary
from almea_pyg.pipeline.variants import HARNESS_VARIANTS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "accuracy"
WORK_DIR = ROOT / "runs" / "accuracy"  # runs/ is gitignored

_AL_DEFAULTS = ActiveLearningConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid = parser.add_argument_group("the grid")
    grid.add_argument("--datasets", nargs="+", choices=DATASETS)
    grid.add_argument("--seed-ratios", nargs="+", type=float, default=[0.2])
    grid.add_argument(
        "--variants",
        nargs="+",
        default=["almea"],
        help=f"{', '.join(HARNESS_VARIANTS)} or no_<modality>",
    )
    grid.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    grid.add_argument(
        "--epochs", type=int, help="warm-up epochs (default: Table 9 per dataset)"
    )
    grid.add_argument(
        "--dim", type=int, default=DEFAULT_DIM, help="embedding size (paper: 300)"
    )
    grid.add_argument(
        "--low-resource",
        action="store_true",
        help="Section 4.5: 5/10/15 %% seeds + 1 %% rounds (15/10/5) vs 20 %% seeds; "
        "--variants must be active-learning ones (e.g. almea+ds3)",
    )
    grid.add_argument(
        "--pool-ratio",
        type=float,
        default=0.0,
        help="share of links in no split, revealable only by an oracle",
    )
    grid.add_argument(
        "--max-grad-norm",
        type=float,
        help="clip the gradients' global L2 norm (not in the paper; default: none)",
    )
    grid.add_argument(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        default="paper",
        help="code: the paper's public code's optimiser (weight decay 1e-4, "
        "clipping at 1.0)",
    )
    grid.add_argument(
        "--fanouts",
        type=int,
        nargs="+",
        help="mini-batch training: neighbours sampled per node at each hop "
        "(e.g. 10 10; -1: all); default: the whole graph",
    )
    grid.add_argument(
        "--full-forward",
        action="store_true",
        help="with --fanouts: forward values from the whole graph, gradients "
        "from the sample",
    )
    grid.add_argument(
        "--full-forward-every",
        type=int,
        default=1,
        metavar="K",
        help="with --full-forward: the whole-graph pass every K steps (default: 1)",
    )
    active = parser.add_argument_group("active-learning schedule (almea+* variants)")
    active.add_argument("--rounds", type=int, default=_AL_DEFAULTS.rounds)
    active.add_argument("--interval", type=int, default=_AL_DEFAULTS.interval)
    active.add_argument(
        "--budget",
        type=float,
        default=_AL_DEFAULTS.budget,
        help="per round: fraction of links or count",
    )
    active.add_argument(
        "--alpha", type=float, help="DS3 alpha (default: Table 9 per dataset/ratio)"
    )
    active.add_argument(
        "--lr-decay",
        type=float,
        default=_AL_DEFAULTS.lr_decay,
        help="round r trains at lr-decay^r times the learning rate (not in the paper)",
    )
    active.add_argument(
        "--rewarmup",
        type=int,
        default=_AL_DEFAULTS.rewarmup,
        help="epochs over which the learning rate ramps back up after each round's "
        "labels (not in the paper)",
    )
    active.add_argument(
        "--prune",
        type=float,
        help="DS3: keep this top fraction of the candidate pool (App. B.6; "
        "default: all of it)",
    )
    where = parser.add_argument_group("where")
    where.add_argument("--data-dir", help="local mmkb directory (../shared/data/mmkg)")
    where.add_argument(
        "--cache-dir", help="processed-pair cache (default: the library's)"
    )
    where.add_argument("--results", type=Path, default=RESULTS)
    where.add_argument("--work-dir", type=Path, default=WORK_DIR)
    run = parser.add_argument_group("running")
    run.add_argument("--device", default="cpu")
    run.add_argument("--eval-every", type=int, default=0)
    run.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument(
        "--no-warm-start",
        action="store_true",
        help="train an active-learning cell's warm-up even when the run without "
        "active learning of the same seed has it",
    )
    run.add_argument(
        "--in-process", action="store_true", help="no child process per cell"
    )
    run.add_argument("--dry-run", action="store_true", help="list the cells only")
    run.add_argument("-v", "--verbose", action="store_true", help="library logs too")
    summary = parser.add_argument_group("summary")
    summary.add_argument("--summarise", action="store_true", help="no training")
    summary.add_argument("--metric", choices=["csls", "cosine"], default="csls")
    summary.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="paired t-test of variant A against B (repeatable); a variant with "
        "its summary label's training options names those cells, e.g. "
        "'almea fanouts10x10' or 'almea code-optimizer'",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger(MODULE).setLevel(logging.INFO)
    try:
        if args.summarise:
            _, markdown = write_summary(
                args.results, metric=args.metric, compare=args.compare
            )
            print(markdown, end="")
            return 0
        if not args.datasets:
            raise ValueError("--datasets is required to run cells")
        unscheduled = [name for name in args.datasets if name not in PAPER_SCHEDULE]
        if unscheduled and args.epochs is None:
            raise ValueError(
                f"the paper has no schedule for {', '.join(unscheduled)}: give --epochs"
            )
        grid = Grid(**{f.name: getattr(args, f.name) for f in fields(Grid)})
        cells = grid.cells()
        if args.dry_run:
            for cell in cells:
                done = is_done(cell, args.results)
                print(f"{'done' if done else 'todo'}  {cell.name}")
            return 0
        options = RunOptions(
            results=str(args.results),
            work_dir=str(args.work_dir),
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
            device=args.device,
            eval_every=args.eval_every,
            threads=args.threads,
            progress=not args.no_progress,
            warm_start=not args.no_warm_start,
            verbose=args.verbose,
            command=[
                "benchmarks/accuracy.py",
                *(sys.argv[1:] if argv is None else argv),
            ],
        )
        return 1 if run_grid(cells, options, isolate=not args.in_process) else 0
    except (ValueError, FileNotFoundError) as error:
        print(f"accuracy.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
