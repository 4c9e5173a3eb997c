"""The ``almea-pyg`` command line: ``train``, ``evaluate``, ``select`` and ``label``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from almea_pyg.active.labels import write_label_request
from almea_pyg.active.loop import ActiveLearner, ActiveLearningConfig
from almea_pyg.train.experiment import (
    PAPER_SCHEDULE,
    VARIANTS,
    ExperimentConfig,
    build_model,
    prepare_pair,
    run_experiment,
)
from almea_pyg.train.trainer import Trainer

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
    parser.add_argument(
        "--pool-ratio",
        type=float,
        default=0.0,
        help="share of links hidden from every split, revealable only by an oracle",
    )
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
        "--max-grad-norm",
        type=float,
        help="clip the gradients' global L2 norm to this (default: no clipping)",
    )
    parser.add_argument(
        "--impute", action="store_true", help="impute missing modalities at inference"
    )
    parser.add_argument("--no-progress", action="store_true")
    active = parser.add_argument_group("active learning (on with --rounds > 0)")
    active.add_argument("--rounds", type=int, default=0, help="T_r (paper: 5)")
    active.add_argument("--interval", type=int, default=50, help="T_inter epochs")
    active.add_argument(
        "--budget",
        type=float,
        default=0.01,
        help="per round: fraction of links or count",
    )
    active.add_argument(
        "--strategy", default="ds3", help="ds3, random, uncertainty, ..."
    )
    active.add_argument("--alpha", type=float, help="DS3 sparsification factor")
    active.add_argument(
        "--threshold", type=float, help="ask only pairs scoring >= this"
    )
    active.add_argument(
        "--oracle", choices=["simulated", "pseudo", "human"], default="simulated"
    )
    active.add_argument(
        "--transductive",
        action="store_true",
        help="let test entities into the pool (the paper's code; leaks with simulated)",
    )
    active.add_argument(
        "--resume", action="store_true", help="continue from --output/checkpoint.pt"
    )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    model = {"dim": args.dim}
    if args.impute:
        model["impute_missing"] = True
    return ExperimentConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        seed_ratio=args.seed_ratio,
        pool_ratio=args.pool_ratio,
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
        max_grad_norm=args.max_grad_norm,
        model=model,
        active=active_config_from_args(args),
        progress=not args.no_progress,
    )


def active_config_from_args(args: argparse.Namespace) -> ActiveLearningConfig | None:
    if not args.rounds:
        return None
    kwargs = {"alpha": args.alpha} if args.alpha is not None else {}
    return ActiveLearningConfig(
        interval=args.interval,
        rounds=args.rounds,
        budget=args.budget,
        threshold=args.threshold,
        strategy=args.strategy,
        strategy_kwargs=kwargs,
        oracle=args.oracle,
        transductive=args.transductive,
    )


def format_metrics(result: dict) -> str:
    lines = []
    for metric, values in result["metrics"].items():
        lines.append(
            f"{metric:>6}: Hits@1 {values['hits@1']:.2f}  "
            f"Hits@10 {values['hits@10']:.2f}  MRR {values['mrr']:.2f}"
        )
    for modality, row in (result.get("latent_diagnostics") or {}).items():
        lines.append(
            f"latent {modality}: {row['active_units']} active units, "
            f"KL/dim {row['kl_per_dim']:.3f}, reconstruction R2 "
            f"{row['reconstruction_r2']:.3f}, imputation R2 {row['imputation_r2']:.3f}"
        )
    timing = result.get("timing", {})
    if timing.get("seconds_per_epoch") is not None:
        lines.append(
            f"timing: {timing['seconds_per_epoch']:.2f} s/epoch, "
            f"peak memory {timing['peak_memory_mib']:.0f} MiB"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    if args.resume:
        if not args.output:
            raise ValueError("--resume needs the run's --output directory")
        config = stored_config(Path(args.output))
        config.progress = not args.no_progress
    result = run_experiment(config, resume=args.resume)
    if result["status"] == "labels_pending":
        done = len(result["rounds"]) - 1
        print(
            f"round {done + 1}: labels requested in "
            f"{Path(args.output) / f'labels_round{done + 1}.csv'}; fill the label "
            f"column (yes/no), run `almea-pyg label import FILE --run {args.output}`, "
            f"then `almea-pyg train --resume --output {args.output}`"
        )
        return
    for row in result["rounds"]:
        print(
            f"round {row['round']}: asked {row['asked']}, correct {row['correct']}, "
            f"labelled {row['labelled']}, Hits@1 {row['hits@1']:.2f}, "
            f"MRR {row['mrr']:.2f}"
        )
    print(format_metrics(result))
    if args.output:
        print(f"results: {Path(args.output) / 'result.json'}")


def stored_config(run: Path) -> ExperimentConfig:
    """The configuration a run stored in its ``result.json`` or checkpoint."""
    result_path = run / "result.json"
    if not result_path.exists():
        raise FileNotFoundError(
            f"{result_path} not found: is {run} a training --output?"
        )
    return ExperimentConfig.from_dict(json.loads(result_path.read_text())["config"])


def restore_learner(
    run: Path, active: ActiveLearningConfig | None = None
) -> ActiveLearner:
    """A run's trainer and active learner as its checkpoint left them.

    ``active`` replaces the run's own active-learning settings (a run trained
    without active learning has none).
    """
    import torch

    config = stored_config(run)
    active = active or config.active
    if active is None:
        raise ValueError(f"{run} ran without active learning: give a strategy")
    checkpoint = run / "checkpoint.pt"
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint} not found")
    pair = prepare_pair(config)
    trainer = Trainer(build_model(config, pair), pair, progress=False)
    learner = ActiveLearner(trainer, active, output_dir=run, seed=config.seed)
    state = torch.load(checkpoint, weights_only=False)
    if "trainer" in state:
        learner.load_state_dict(state)
    else:
        trainer.load_state_dict(state)
    return learner


def cmd_label_import(args: argparse.Namespace) -> None:
    run = Path(args.run)
    learner = restore_learner(run)
    answer = learner.import_labels(args.file)
    learner.save_checkpoint()
    print(
        f"imported {answer.accepted.size(1)} yes and {answer.rejected.size(1)} no; "
        f"resume with `almea-pyg train --resume --output {run}`"
    )


def cmd_label_export(args: argparse.Namespace) -> None:
    run = Path(args.run)
    learner = restore_learner(run)
    if learner.pending is None or "accepted" in learner.pending:
        raise ValueError(f"{run} has no round waiting for labels")
    round_ = learner.completed + 1
    path = Path(args.output) if args.output else learner.label_path(round_)
    pair = learner.trainer.pair
    pending = learner.pending
    write_label_request(path, pair, pending["pairs"], pending["scores"], round_)
    print(f"round {round_}: {pending['pairs'].size(1)} pairs to label in {path}")


def cmd_select(args: argparse.Namespace) -> None:
    run = Path(args.run)
    active = ActiveLearningConfig(
        budget=args.budget,
        threshold=args.threshold,
        strategy=args.strategy,
        strategy_kwargs={"alpha": args.alpha} if args.alpha is not None else {},
        oracle="human",
        transductive=args.transductive,
    )
    learner = restore_learner(run, active)  # an active run's negatives stay out
    pairs, scores = learner.propose()
    path = Path(args.output) if args.output else run / "selected_pairs.csv"
    write_label_request(path, learner.trainer.pair, pairs, scores, 0)
    print(
        f"{pairs.size(1)} pairs selected by {args.strategy} "
        f"({'test entities in the pool' if args.transductive else 'no test entity'})"
        f": {path}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from almea_pyg.metrics.ranking import evaluate_alignment

    run = Path(args.run)
    config = stored_config(run)
    checkpoint_path = run / "checkpoint.pt"
    if not checkpoint_path.exists():
        raise FileNotFoundError(f"{checkpoint_path} not found")
    pair = prepare_pair(config)
    model = build_model(config, pair)
    state = torch.load(checkpoint_path, weights_only=False)
    model.load_state_dict(state.get("trainer", state)["model"])
    emb_s, emb_t = model.embed(pair)
    metrics = {
        metric: evaluate_alignment(emb_s, emb_t, pair.test_links, metric=metric)
        for metric in args.metric
    }
    latent = model.latent_diagnostics(pair) if model.lsl is not None else None
    print(format_metrics({"metrics": metrics, "latent_diagnostics": latent}))


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
    label = sub.add_parser("label", help="label files of a human-oracle run")
    label_sub = label.add_subparsers(dest="label_command", required=True)
    label_import = label_sub.add_parser(
        "import", parents=[common], help="validate a filled label file and store it"
    )
    label_import.add_argument("file", help="the filled labels_roundN.csv")
    label_import.add_argument(
        "--run", required=True, help="the run's --output directory"
    )
    label_import.set_defaults(func=cmd_label_import)
    label_export = label_sub.add_parser(
        "export", parents=[common], help="write the pending round's label file again"
    )
    label_export.add_argument("--run", required=True, help="the run's --output")
    label_export.add_argument("--output", help="default: the run's labels_roundN.csv")
    label_export.set_defaults(func=cmd_label_export)
    select = sub.add_parser(
        "select",
        parents=[common],
        help="select pairs to label from a trained run (a label file)",
    )
    select.add_argument("run", help="the --output directory of a training run")
    select.add_argument(
        "--budget", type=float, default=0.01, help="fraction of the links or count"
    )
    select.add_argument(
        "--strategy", default="ds3", help="a strategy of almea_pyg.select"
    )
    select.add_argument("--alpha", type=float, help="DS3 sparsification factor")
    select.add_argument("--threshold", type=float, help="minimum similarity score")
    select.add_argument(
        "--transductive",
        action="store_true",
        help="let test entities into the pool (the paper's code)",
    )
    select.add_argument("--output", help="default: RUN/selected_pairs.csv")
    select.set_defaults(func=cmd_select)
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
