"""The ``almea-pyg`` command line: ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from almea_pyg.train.experiment import (
    PAPER_SCHEDULE,
    VARIANTS,
    ExperimentConfig,
    build_model,
    prepare_pair,
    run_experiment,
)

log = logging.getLogger("almea_pyg")

DATASETS = sorted(PAPER_SCHEDULE)


def add_train_arguments(
    parser: argparse.ArgumentParser, *, dataset: str | None = None
) -> None:
    """The options of a training run (shared by the CLI and the examples)."""
    if dataset is None:
        parser.add_argument("--dataset", choices=DATASETS, default="synthetic")
    else:
        parser.set_defaults(dataset=dataset)
    parser.add_argument(
        "--data-dir", help="local mmkb directory (e.g. ../shared/data/mmkg)"
    )
    parser.add_argument("--cache-dir", default="data", help="processed-pair cache")
    parser.add_argument("--seed-ratio", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--epochs", type=int, help="default: the paper's warm-up (Table 9)"
    )
    parser.add_argument("--eval-every", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--output", help="directory for result.json, log.csv, checkpoint"
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="almea")
    parser.add_argument(
        "--modalities",
        help="comma-separated subset, e.g. graph,rel,attr (default: all)",
    )
    parser.add_argument("--metric", choices=["cosine", "csls"], default="csls")
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=3500)
    parser.add_argument(
        "--no-impute", action="store_true", help="no imputation at inference"
    )
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    model = {"dim": args.dim}
    if args.no_impute:
        model["impute_missing"] = False
    return ExperimentConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        seed_ratio=args.seed_ratio,
        seed=args.seed,
        epochs=args.epochs,
        eval_every=args.eval_every,
        device=args.device,
        output=args.output,
        variant=args.variant,
        modalities=args.modalities.split(",") if args.modalities else None,
        metric=args.metric,
        lr=args.lr,
        batch_size=args.batch_size,
        model=model,
        progress=not args.no_progress,
    )


def format_metrics(result: dict) -> str:
    lines = []
    for metric, values in result["metrics"].items():
        lines.append(
            f"{metric:>6}: Hits@1 {values['hits@1']:.2f}  "
            f"Hits@10 {values['hits@10']:.2f}  MRR {values['mrr']:.2f}"
        )
    timing = result.get("timing", {})
    if timing.get("seconds_per_epoch") is not None:
        lines.append(
            f"timing: {timing['seconds_per_epoch']:.2f} s/epoch, "
            f"peak memory {timing['peak_memory_mib']:.0f} MiB"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> None:
    result = run_experiment(config_from_args(args))
    print(format_metrics(result))
    if args.output:
        print(f"results: {Path(args.output) / 'result.json'}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from almea_pyg.metrics.ranking import evaluate_alignment

    run = Path(args.run)
    result_path, checkpoint_path = run / "result.json", run / "checkpoint.pt"
    for path in (result_path, checkpoint_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: is {run} a training --output?")
    config = ExperimentConfig(**json.loads(result_path.read_text())["config"])
    pair = prepare_pair(config)
    model = build_model(config, pair)
    model.load_state_dict(torch.load(checkpoint_path, weights_only=False)["model"])
    emb_s, emb_t = model.embed(pair)
    metrics = {
        metric: evaluate_alignment(emb_s, emb_t, pair.test_links, metric=metric)
        for metric in args.metric
    }
    print(format_metrics({"metrics": metrics}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="almea-pyg", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train", parents=[common], help="train ALMEA (or a variant) and evaluate it"
    )
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)
    evaluate = sub.add_parser(
        "evaluate", parents=[common], help="evaluate a trained run"
    )
    evaluate.add_argument("run", help="the --output directory of a training run")
    evaluate.add_argument(
        "--metric", nargs="+", choices=["cosine", "csls"], default=["cosine", "csls"]
    )
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"almea-pyg: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
