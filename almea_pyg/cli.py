"""The ``almea-pyg`` command line: ``train``, ``evaluate``, ``select`` and ``label``."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
from argparse import SUPPRESS
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from almea_pyg.active.labels import unanswered_pairs, write_label_request
from almea_pyg.active.loop import ActiveLearningConfig, is_budget
from almea_pyg.data.missing import FILL_METHODS
from almea_pyg.models import IMPUTERS, latent_diagnostics
from almea_pyg.pipeline.experiment import (
    DATASETS,
    DEFAULT_DIM,
    OPTIMIZERS,
    VARIANTS,
    ExperimentConfig,
    build_model,
    evaluate_test_links,
    restore_learner,
    restore_run,
    run_experiment,
    stored_config,
)
from almea_pyg.pipeline.variants import HARNESS_VARIANTS
from almea_pyg.select.base import STRATEGIES, strategy_options
from almea_pyg.select.ds3 import LAM_RULES
from almea_pyg.train.memory import limit_heap_fragmentation
from almea_pyg.train.trainer import (
    TrainingDivergedError,
)

log = logging.getLogger("almea_pyg")


def _number(kind: type, name: str, accept) -> Any:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {name}, got {text}")
        return value

    parse.__name__ = name
    return parse


positive_int = _number(int, "a whole number >= 1", lambda v: v >= 1)
non_negative_int = _number(int, "a whole number >= 0", lambda v: v >= 0)
positive_float = _number(float, "a number > 0", lambda v: math.isfinite(v) and v > 0)
fraction = _number(float, "a fraction in (0, 1)", lambda v: 0 < v < 1)
share = _number(float, "a fraction in [0, 1)", lambda v: 0 <= v < 1)
unit_share = _number(float, "a fraction in [0, 1]", lambda v: 0 <= v <= 1)
positive_share = _number(float, "a number in (0, 1]", lambda v: 0 < v <= 1)
budget = _number(float, "a fraction in (0, 1) or a whole count >= 1", is_budget)
fanout = _number(int, "a whole number >= 1, or -1 (all)", lambda v: v >= 1 or v == -1)


_RUN = ExperimentConfig()
_ACTIVE = ActiveLearningConfig()
#: What the command line asks when nothing else is typed: the grid's variant
#: that measured best of what a person can be asked, from 1 % and 5 % seeds on
#: FB15K-DB15K (3 seeds each; docs/results.md): entity questions ("what is a's
#: counterpart?") chosen by DS3 at the relative λ rule. The library's
#: :class:`ActiveLearningConfig` keeps the paper's settings for reproduction.
_CLI_VARIANT = HARNESS_VARIANTS["almea+ds3+relative+entity"]
CLI_QUESTION = _CLI_VARIANT.question
CLI_DS3 = {"lam_rule": _CLI_VARIANT.lam_rule, "alpha": _CLI_VARIANT.alpha}


#: DS3's options on the command line (:func:`add_ds3_arguments`), by their names.
DS3_OPTIONS = ("lam_rule", "alpha", "prune", "block_size")


def add_ds3_arguments(parser: argparse._ActionsContainer) -> None:
    """DS3's options on a parser or argument group (typed or absent)."""
    parser.add_argument(
        "--lam-rule",
        choices=LAM_RULES,
        default=SUPPRESS,
        help="DS3's λ rule: relative (default: λ = α·λ_max, α "
        f"{CLI_DS3['alpha']} unless --alpha), paper (λ = α‖A‖_F/√K, α "
        "0.35: keeps almost nothing on real pools), code (the paper's code)",
    )
    parser.add_argument(
        "--alpha", type=float, default=SUPPRESS, help="DS3 sparsification factor"
    )
    parser.add_argument(
        "--prune",
        type=positive_share,
        default=SUPPRESS,
        help="DS3 keeps this most confident fraction of its candidate pool "
        "(App. B.6; default: all of it)",
    )
    parser.add_argument(
        "--block-size",
        type=positive_int,
        default=SUPPRESS,
        help="DS3 splits a pool larger than this into blocks of nearby pairs "
        "solved in one batched call (memory B k^2, not K^2; for large KGs; "
        "default: one problem)",
    )


def ds3_kwargs(
    strategy: str, given: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The strategy's keyword arguments: ``base`` (a config file's) or, without
    one, :data:`CLI_DS3` for DS3, with ``--lam-rule`` and ``--alpha`` as typed.
    A rule typed without ``--alpha`` takes that rule's own default α; DS3's
    options typed for a strategy that has none are an error, not ignored."""
    typed = {name: given[name] for name in DS3_OPTIONS if name in given}
    strategy = strategy.lower()  # the registry's names, as strategy_resolver reads them
    strategy_class = STRATEGIES.get(strategy)
    if strategy_class is not None:
        takes = strategy_options(strategy_class)
        foreign = sorted(name for name in typed if name not in takes)
        if foreign:
            options = ", ".join("--" + name.replace("_", "-") for name in foreign)
            raise ValueError(f"{options}: not an option of strategy {strategy!r}")
    if base is None:
        base = CLI_DS3 if strategy == "ds3" else {}
    kwargs = {**base, **typed}
    if "lam_rule" in typed and "alpha" not in typed:
        kwargs.pop("alpha", None)
    if kwargs.get("lam_rule") == "relative":
        kwargs.setdefault("alpha", CLI_DS3["alpha"])
    return kwargs


def add_train_arguments(
    parser: argparse.ArgumentParser, *, dataset: str | None = None
) -> None:
    """The options of a training run (shared by the CLI and the examples).

    The run's settings have no argparse default: one is in the parsed namespace
    only when typed, so that it overrides ``--config`` (:func:`config_from_args`).
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the run's settings from a .json, .toml or .yaml file (docs/runs.md); "
        "options typed here override the file's",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        default=False,
        help="print the run's settings as JSON (a --config file) instead of training",
    )
    run = parser.add_argument_group("the run", argument_default=SUPPRESS)
    if dataset is None:
        run.add_argument(
            "--dataset",
            choices=DATASETS,
            metavar="NAME",
            help="a named dataset: synthetic (default), FB15K_DB15K, FB15K_YAGO15K, "
            "DBP15K_zh_en|ja_en|fr_en, OpenEA_<pair> (e.g. OpenEA_D_W_15K_V1)",
        )
        run.add_argument(
            "--data",
            metavar="DIR",
            help="your own KG pair: a directory in any supported layout (mmkb, "
            "MMEA/GCN-Align, OpenEA, TSV; see docs/data.md), instead of --dataset",
        )
    else:
        parser.set_defaults(dataset=dataset, data=None)
    run.add_argument(
        "--data-dir",
        help="local copy of a named dataset's files (e.g. ../shared/data/mmkg)",
    )
    run.add_argument(
        "--cache-dir",
        help="processed-pair cache (default: $XDG_CACHE_HOME/almea_pyg or "
        "~/.cache/almea_pyg)",
    )
    run.add_argument("--seed-ratio", type=fraction, help=f"default: {_RUN.seed_ratio}")
    run.add_argument(
        "--pool-ratio",
        type=share,
        help="share of links hidden from every split, revealable only by an oracle",
    )
    run.add_argument("--seed", type=int, help=f"default: {_RUN.seed}")
    run.add_argument(
        "--epochs", type=positive_int, help="default: the paper's warm-up (Table 9)"
    )
    run.add_argument(
        "--eval-every",
        type=non_negative_int,
        help="evaluate every this many epochs (default: 0, never during training)",
    )
    run.add_argument("--device", help=f"default: {_RUN.device}")
    run.add_argument("--output", help="directory for result.json, log.csv, checkpoint")
    run.add_argument(
        "--variant", choices=sorted(VARIANTS), help=f"default: {_RUN.variant}"
    )
    run.add_argument(
        "--modalities",
        help="comma-separated subset, e.g. graph,rel,attr (default: all)",
    )
    run.add_argument(
        "--metric", choices=["cosine", "csls"], help=f"default: {_RUN.metric}"
    )
    run.add_argument("--dim", type=positive_int, help=f"default: {DEFAULT_DIM}")
    run.add_argument("--lr", type=positive_float, help=f"default: {_RUN.lr:g}")
    run.add_argument(
        "--batch-size", type=positive_int, help=f"default: {_RUN.batch_size}"
    )
    run.add_argument(
        "--fanouts",
        type=fanout,
        nargs="+",
        metavar="K",
        help="mini-batch training: run each step's GAT on the batch's sampled "
        "neighbourhood, K neighbours per node at each hop, one K per GAT layer "
        "(e.g. --fanouts 10 10; -1: all); default: the whole graph",
    )
    run.add_argument(
        "--full-forward",
        action="store_true",
        help="with --fanouts: each step's forward values from the whole graph "
        "(run without gradients), only the gradients from the sample",
    )
    run.add_argument(
        "--full-forward-every",
        type=positive_int,
        metavar="K",
        help="with --full-forward: run the whole-graph pass every K steps of an "
        "epoch, the steps between reusing its values (default: 1, every step)",
    )
    run.add_argument(
        "--sparse-table",
        action="store_true",
        help="with --fanouts: the entity table's gradient as sparse rows; a step "
        "updates the rows it read, the others' Adam steps applied when they are "
        "next read (the same optimiser; faster from about a million entities "
        "per side)",
    )
    run.add_argument(
        "--max-grad-norm",
        type=positive_float,
        help="clip the gradients' global L2 norm to this (default: the optimizer's)",
    )
    run.add_argument(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        help="paper (default): Adam as the text states; code: as the paper's public "
        "code runs (weight decay 1e-4, gradients clipped at norm 1.0; 9-17 MRR "
        "lower on FB15K-YAGO15K and FB15K-DB15K, docs/results.md)",
    )
    run.add_argument(
        "--checkpoint-every",
        type=non_negative_int,
        help="checkpoint every this many warm-up epochs (default: "
        f"{_RUN.checkpoint_every}; 0: only at the end)",
    )
    run.add_argument(
        "--impute", action="store_true", help="impute missing modalities at inference"
    )
    run.add_argument(
        "--imputer",
        choices=IMPUTERS,
        help="what imputes with --impute: lsl (LSL's decoders, the paper; the "
        "default) or linear (a ridge regression on the entity's other modalities, "
        "fitted on the trained embeddings)",
    )
    run.add_argument("--no-progress", action="store_true")
    missing = parser.add_argument_group(
        "missing modalities (a controlled removal, and the fill)",
        argument_default=SUPPRESS,
    )
    missing.add_argument(
        "--drop-modality",
        metavar="NAME",
        help="remove this feature modality (e.g. attr, rel, img) from a share of "
        "each KG's entities, drawn with --seed, after the split",
    )
    missing.add_argument(
        "--drop-fraction",
        type=unit_share,
        help="the share of each KG's entities that lose it (e.g. 0.4)",
    )
    missing.add_argument(
        "--fill",
        choices=FILL_METHODS,
        help="fill the rows entities lack before training: zero (default: left "
        "missing, imputed by LSL with --impute), mean (the KG's mean row), "
        "propagate (neighbour means over the relation graph)",
    )
    add_search_arguments(parser)
    active = parser.add_argument_group(
        "active learning (on with --rounds > 0)", argument_default=SUPPRESS
    )
    active.add_argument(
        "--rounds", type=non_negative_int, help="T_r (default: 0; paper: 5)"
    )
    active.add_argument(
        "--interval", type=positive_int, help=f"T_inter epochs ({_ACTIVE.interval})"
    )
    active.add_argument(
        "--budget",
        type=budget,
        help=f"per round: fraction of links or count (default: {_ACTIVE.budget})",
    )
    active.add_argument(
        "--strategy",
        help="ds3 (default), random, random_pair, uncertainty, degree, coreset, "
        "passive (random pool links revealed: the no-strategy baseline), or none "
        "(nothing asked: the no-label reference that trains as many epochs)",
    )
    active.add_argument(
        "--question",
        choices=["pair", "entity"],
        help="entity (default): what is a's counterpart, or none? pair (the "
        "paper's): is (a, b) a match?",
    )
    add_ds3_arguments(active)
    active.add_argument(
        "--threshold", type=float, help="ask only pairs scoring >= this"
    )
    active.add_argument(
        "--oracle",
        choices=["simulated", "pseudo", "human"],
        help=f"default: {_ACTIVE.oracle}",
    )
    active.add_argument(
        "--transductive",
        action="store_true",
        help="let test entities into the pool (the paper's code; leaks with simulated)",
    )
    active.add_argument(
        "--lr-decay",
        type=positive_share,
        help="round r trains at lr-decay^r times the learning rate (not in the "
        "paper; default: 1, constant)",
    )
    active.add_argument(
        "--rewarmup",
        type=non_negative_int,
        help="after each round's labels, ramp the learning rate back up over this "
        "many epochs (not in the paper; default: 0)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        default=False,
        help="continue the run in --output from its checkpoint (its own settings)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        default=False,
        help="replace the run that --output holds (default: refuse)",
    )


#: Options that set the :class:`~almea_pyg.metrics.FaissSearch` argument of their
#: name (``--faiss-index`` its ``index``).
SEARCH_OPTIONS = {"faiss_index": "index", "list_size": "list_size", "nprobe": "nprobe"}


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the final test evaluation's search (no defaults)."""
    search = parser.add_argument_group(
        "the test evaluation's search", argument_default=SUPPRESS
    )
    search.add_argument(
        "--search",
        choices=["exact", "faiss"],
        help="exact (default): score every candidate; faiss: rank within each "
        "entity's faiss top-k list, for large graphs (pip install "
        "'almea-pyg[faiss]'; docs/scale.md)",
    )
    search.add_argument(
        "--faiss-index",
        choices=["flat", "hnsw", "ivf"],
        help="flat (default): exact, in bounded memory; hnsw, ivf: approximate "
        "(a true target they miss counts as a miss)",
    )
    search.add_argument(
        "--list-size",
        type=positive_int,
        help="length of each top-k list (default: 100); a target beyond it is a miss",
    )
    search.add_argument(
        "--nprobe", type=positive_int, help="lists an ivf search scans (default: 64)"
    )


def search_from_args(
    given: Mapping[str, Any], search: str, search_kwargs: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """``search`` and ``search_kwargs`` with the search options typed over them."""
    typed = {SEARCH_OPTIONS[k]: v for k, v in given.items() if k in SEARCH_OPTIONS}
    search = given.get("search", search)
    if typed and search != "faiss":
        options = [f"--{k.replace('_', '-')}" for k in SEARCH_OPTIONS if k in given]
        raise ValueError(f"{', '.join(options)} go with --search faiss")
    if search != "faiss":
        return search, None
    return search, {**(search_kwargs or {}), **typed} or None


#: Options that set the :class:`ExperimentConfig` field of their name.
CONFIG_OPTIONS = (
    "dataset",
    "data_dir",
    "cache_dir",
    "seed_ratio",
    "pool_ratio",
    "seed",
    "epochs",
    "eval_every",
    "device",
    "output",
    "variant",
    "metric",
    "lr",
    "batch_size",
    "fanouts",
    "full_forward",
    "full_forward_every",
    "max_grad_norm",
    "optimizer",
    "checkpoint_every",
    "drop_modality",
    "drop_fraction",
    "fill",
)
#: Options that set the :class:`ActiveLearningConfig` field of their name.
ACTIVE_OPTIONS = (
    "rounds",
    "interval",
    "budget",
    "strategy",
    "question",
    "threshold",
    "oracle",
    "transductive",
    "lr_decay",
    "rewarmup",
)


def config_from_args(
    args: argparse.Namespace, base: ExperimentConfig | None = None
) -> ExperimentConfig:
    """The run the options describe: ``base`` (a ``--config`` file's settings),
    else the defaults, with every option typed on the command line over it."""
    given = vars(args)
    config = (
        copy.deepcopy(base)
        if base is not None
        else ExperimentConfig(model={"dim": DEFAULT_DIM})
    )
    updates = {name: given[name] for name in CONFIG_OPTIONS if name in given}
    if "dataset" in given:  # a named dataset instead of the file's directory
        updates["data"] = None
    if "data" in given:
        data = str(Path(given["data"]).resolve()) if given["data"] else None
        updates["data"] = data
        if data is not None:
            updates["dataset"] = Path(data).name
    if "modalities" in given:
        updates["modalities"] = given["modalities"].split(",")
    if "no_progress" in given:
        updates["progress"] = False
    model = dict(config.model)
    if "dim" in given:
        model["dim"] = given["dim"]
    if "impute" in given:
        model["impute_missing"] = True
    if "sparse_table" in given:
        model["sparse"] = True
    if "imputer" in given:
        model["imputer"] = given["imputer"]
    updates["model"] = model
    updates["search"], updates["search_kwargs"] = search_from_args(
        given, config.search, config.search_kwargs
    )
    active = {name: given[name] for name in ACTIVE_OPTIONS if name in given}
    if active or "alpha" in given or "lam_rule" in given:
        settings = config.active or ActiveLearningConfig(
            rounds=0, question=CLI_QUESTION
        )
        active["strategy_kwargs"] = ds3_kwargs(
            active.get("strategy", settings.strategy),
            given,
            config.active.strategy_kwargs if config.active else None,
        )
        settings = replace(settings, **active)
        updates["active"] = settings if settings.rounds else None
    return replace(config, **updates)


def _search_note(search: dict | None) -> str:
    """What a faiss-searched metric must be read with: its index and the links
    its lists could not rank (counted as misses)."""
    if search is None:
        return ""
    return (
        f"  (faiss {search['index']}, top-{search['list_size']} lists, "
        f"{search['unranked']} links unranked, counted as misses)"
    )


def format_metrics(result: dict) -> str:
    lines = []
    for metric, values in result["metrics"].items():
        lines.append(
            f"{metric:>11}: Hits@1 {values['hits@1']:.2f}  "
            f"Hits@10 {values['hits@10']:.2f}  MRR {values['mrr']:.2f}"
            + _search_note(values.get("search"))
        )
    for modality, row in (result.get("latent_diagnostics") or {}).items():
        lines.append(
            f"latent {modality}: {row['active_units']} active units, "
            f"KL/dim {row['kl_per_dim']:.3f}, reconstruction R2 "
            f"{row['reconstruction_r2']:.3f}, imputation R2 {row['imputation_r2']:.3f}"
        )
    for modality, row in (result.get("imputer_fit") or {}).items():
        r2 = "-" if row["heldout_r2"] is None else f"{row['heldout_r2']:.3f}"
        lines.append(
            f"linear imputer {modality}: held-out R2 {r2}, "
            f"{'imputed' if row['imputes'] else 'left missing'}"
        )
    missing = result.get("missing_modality")
    if missing:
        for part in ("affected", "rest"):
            values = missing[part]["csls"]
            if values["mrr"] is not None:
                lines.append(
                    f"{part:>8} links ({missing['links'][part]}): CSLS Hits@1 "
                    f"{values['hits@1']:.2f}  MRR {values['mrr']:.2f}"
                )
        for key in ("fill_r2", "imputation_r2"):
            if missing[key] is not None:
                lines.append(f"{key} on the removed rows: {missing[key]:.3f}")
    timing = result.get("timing", {})
    if timing.get("seconds_per_epoch") is not None:
        lines.append(
            f"timing: {timing['seconds_per_epoch']:.2f} s/epoch, "
            f"peak memory {timing['peak_memory_mib']:.0f} MiB"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> None:
    if args.resume:
        output = getattr(args, "output", None)
        if not output:
            raise ValueError("--resume needs the run's --output directory")
        if args.config:
            raise ValueError(
                "--resume continues a run with its own settings: no --config"
            )
        config = stored_config(Path(output))
        config.output = output  # a copied folder resumes into itself
        config.progress = "no_progress" not in args
    else:
        base = ExperimentConfig.from_file(args.config) if args.config else None
        config = config_from_args(args, base)
    if args.print_config:
        print(json.dumps(asdict(config), indent=2))
        return
    result = run_experiment(config, resume=args.resume, overwrite=args.overwrite)
    output = config.output
    if result["status"] == "labels_pending":
        round_ = len(result["rounds"])
        print(
            f"round {round_}: labels requested in "
            f"{Path(output) / f'labels_round{round_}.csv'}; fill the label "
            f"column (yes/no), run `almea-pyg label import FILE --run {output}`, "
            f"then `almea-pyg train --resume --output {output}`"
        )
        return
    for row in result["rounds"]:
        print(
            f"round {row['round']}: asked {row['asked']}, correct {row['correct']}, "
            f"labelled {row['labelled']}, Hits@1 {row['hits@1']:.2f}, "
            f"MRR {row['mrr']:.2f}"
        )
    print(format_metrics(result))
    if output:
        print(f"results: {Path(output) / 'result.json'}")


def cmd_label_import(args: argparse.Namespace) -> None:
    run = Path(args.run)
    learner = restore_learner(run)
    if learner.status != "labels_pending":
        raise ValueError(f"{run} has no round waiting for labels")
    asked = learner.pending.pairs
    answer = learner.import_labels(args.file)
    learner.save_checkpoint()
    missing = unanswered_pairs(answer, asked).size(1)
    note = (
        f"; {missing} of {asked.size(1)} asked pairs have no answer and stay "
        "unlabelled (they may be asked again)"
        if missing
        else ""
    )
    print(
        f"imported {answer.accepted.size(1)} yes and {answer.rejected.size(1)} no"
        f"{note}; resume with `almea-pyg train --resume --output {run}`"
    )


def cmd_label_export(args: argparse.Namespace) -> None:
    run = Path(args.run)
    learner = restore_learner(run)
    if learner.status != "labels_pending":
        raise ValueError(f"{run} has no round waiting for labels")
    pending = learner.pending
    path = (
        Path(args.output) if args.output else learner.oracle.label_path(pending.round)
    )
    write_label_request(
        path, learner.trainer.pair, pending.pairs, pending.scores, pending.round
    )
    print(f"round {pending.round}: {pending.pairs.size(1)} pairs to label in {path}")


def cmd_label_serve(args: argparse.Namespace) -> None:
    from almea_pyg.pipeline.label_page import serve

    serve(
        args.run,
        host=args.host,
        port=args.port,
        token=args.token,
        open_browser=args.open,
        announce=lambda url: print(
            f"label the round at {url} (Ctrl-C stops)", flush=True
        ),  # shown at once even when stdout is a pipe or a file
        resume=args.resume,
        remote_images=args.remote_images,
    )


def cmd_select(args: argparse.Namespace) -> None:
    run = Path(args.run)
    active = ActiveLearningConfig(
        budget=args.budget,
        threshold=args.threshold,
        strategy=args.strategy,
        strategy_kwargs=ds3_kwargs(args.strategy, vars(args)),
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
    config, pair, state = restore_run(Path(args.run))
    settings = {}
    if args.impute is not None:
        settings["impute_missing"] = args.impute
    if args.imputer is not None:
        settings["imputer"] = args.imputer
    if settings:
        config = replace(config, model={**config.model, **settings})
    model = build_model(config, pair)
    model.load_state_dict(state.get("trainer", state)["model"])
    # A transductive run's revealed test links left its test set.
    links = state.get("test_links", pair.test_links).to(pair.links.device)
    search, search_kwargs = search_from_args(
        vars(args), config.search, config.search_kwargs
    )
    metrics = evaluate_test_links(
        model,
        pair,
        args.metric,
        links=links,
        search=search,
        search_kwargs=search_kwargs,
    )
    latent = latent_diagnostics(model, pair) if model.lsl is not None else None
    fit = (
        model.linear_imputer.summary()
        if model.linear_imputer is not None and model.impute_missing
        else None
    )
    print(
        format_metrics(
            {"metrics": metrics, "latent_diagnostics": latent, "imputer_fit": fit}
        )
    )


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
    evaluate.add_argument(
        "--impute",
        action=argparse.BooleanOptionalAction,
        help="impute missing modalities, or not (default: as the run did)",
    )
    evaluate.add_argument(
        "--imputer",
        choices=IMPUTERS,
        help="what imputes (default: as the run did; a linear imputer is fitted "
        "on the run's embeddings)",
    )
    add_search_arguments(evaluate)
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
    label_serve = label_sub.add_parser(
        "serve",
        parents=[common],
        help="answer the pending round in a local web page (pip install flask)",
    )
    label_serve.add_argument("run", help="the run's --output directory")
    label_serve.add_argument("--host", default="127.0.0.1")
    label_serve.add_argument("--port", type=non_negative_int, default=8765)
    label_serve.add_argument("--token", help="default: a random one")
    label_serve.add_argument(
        "--open", action="store_true", help="open the page in a browser"
    )
    label_serve.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help='"Finish round" only imports the labels and shows the resume command '
        "(default: it also resumes training in the background)",
    )
    label_serve.add_argument(
        "--remote-images",
        action="store_true",
        help="embed images given as http(s) URLs (default: links; the page then "
        "loads nothing from other machines)",
    )
    label_serve.set_defaults(func=cmd_label_serve)
    select = sub.add_parser(
        "select",
        parents=[common],
        help="select pairs to label from a trained run (a label file)",
    )
    select.add_argument("run", help="the --output directory of a training run")
    select.add_argument(
        "--budget", type=budget, default=0.01, help="fraction of the links or count"
    )
    select.add_argument(
        "--strategy", default="ds3", help="a strategy of almea_pyg.select"
    )
    add_ds3_arguments(select)
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
    limit_heap_fragmentation()
    try:
        args.func(args)
    except TrainingDivergedError as error:
        print(f"almea-pyg: {error}", file=sys.stderr)
        return 1
    except (
        ValueError,
        FileNotFoundError,
        NotADirectoryError,
        ImportError,
    ) as error:
        print(f"almea-pyg: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
