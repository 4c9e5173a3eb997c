"""Accuracy harness: the paper's Table 1 / Table 2 cells and its Table 5 t-tests.

A cell is one (dataset, seed ratio, variant, warm-up epochs, seed) run of
:func:`almea_pyg.pipeline.experiment.run_experiment`; the variants are
:data:`HARNESS_VARIANTS` (plus ``no_<modality>``). Every cell not yet done runs in
turn (dataset, ratio, seed, then variant), each in a fresh process so that its
peak memory is its own, and writes one JSON into ``--results``. Its run directory
(checkpoint, labelled links, plots: derived from the data, never committed) goes
under ``--work-dir``. Done cells are skipped; an interrupted active-learning cell
resumes from its last checkpoint. An active-learning cell whose warm-up is a done
run without active learning (same seed and schedule) starts from that run's final
checkpoint instead of training the warm-up again: the same result, exactly
(``--no-warm-start`` trains it anyway). A pool ratio leaves the seeds, hence the
warm-up, unchanged: cells with ``--pool-ratio`` start from the run without one.
Active learning follows Table 9: 5 rounds every 50 epochs after the warm-up, 1 % of
the links per round, DS3's alpha per dataset and ratio; ``--prune 0.5`` keeps DS3's
pool to its most confident half, as the paper does (App. B.6).

    python benchmarks/accuracy.py --datasets FB15K_DB15K --seed-ratios 0.2 \\
        --variants almea base almea+ds3 --seeds 0 1 2 --data-dir ../shared/data/mmkg
    python benchmarks/accuracy.py --summarise --compare almea+ds3 almea

``--summarise`` writes ``summary.md`` and ``summary.json`` into ``--results``: mean
± sample std over seeds per row, next to the paper's figure (:data:`PAPER_RESULTS`)
where the paper has that exact row, and the paired t-tests of ``--compare``.
``--low-resource`` runs the settings of the paper's Section 4.5 instead of a grid:

    python benchmarks/accuracy.py --low-resource --datasets FB15K_DB15K \\
        --variants almea+ds3 --seeds 0 1 --data-dir ../shared/data/mmkg

On a
machine shared with other jobs, ``--threads 1`` is often faster than torch's
default.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import statistics
import subprocess
import sys
from argparse import SUPPRESS
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch

from almea_pyg.active.loop import NO_LABELS, PASSIVE, ActiveLearningConfig
from almea_pyg.io import atomic_write_text
from almea_pyg.pipeline import experiment
from almea_pyg.pipeline.experiment import (
    OPTIMIZERS,
    PAPER_SCHEDULE,
    VARIANTS,
    ExperimentConfig,
    write_json,
)
from almea_pyg.select import STRATEGIES
from almea_pyg.train.memory import limit_heap_fragmentation
from almea_pyg.train.trainer import load_checkpoint_state
from almea_pyg.typing import PAPER_MODALITIES

log = logging.getLogger("benchmarks.accuracy")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "accuracy"
WORK_DIR = ROOT / "runs" / "accuracy"  # runs/ is gitignored
DEFAULT_DIM = 300
METRICS = ("hits@1", "hits@10", "mrr")
SUMMARY_NAMES = ("summary.json",)

_AL_DEFAULTS = ActiveLearningConfig()

#: Table 9(a) of the paper: the DS3 sparsification factor alpha per seed ratio.
PAPER_DS3_ALPHA: dict[tuple[str, float], float] = {
    ("FB15K_DB15K", 0.2): 0.35,
    ("FB15K_DB15K", 0.5): 0.45,
    ("FB15K_DB15K", 0.8): 0.95,
    ("FB15K_YAGO15K", 0.2): 0.25,
    ("FB15K_YAGO15K", 0.5): 0.35,
    ("FB15K_YAGO15K", 0.8): 0.45,
}


@dataclass(frozen=True)
class Variant:
    """What a harness variant name runs.

    Attributes:
        description: The variant in words (and the paper row it stands for).
        model: A key of :data:`~almea_pyg.pipeline.experiment.VARIANTS`.
        drop: The modality left out of the model (a modality ablation).
        strategy: Active learning with this strategy when set.
        oracle: The oracle of the active-learning rounds.
        transductive: Test entities in the candidate pool (the paper's code).
        question: ``"pair"`` or ``"entity"`` (see :class:`ActiveLearningConfig`).
        lam_rule: DS3's λ rule (:func:`almea_pyg.select.ds3.ds3`).
        alpha: DS3's α of this variant (else Table 9's, or ``--alpha``).
    """

    description: str
    model: str = "almea"
    drop: str | None = None
    strategy: str | None = None
    oracle: str = "simulated"
    transductive: bool = False
    question: str = "pair"
    lam_rule: str = "paper"
    alpha: float | None = None


_MODEL_NOTES = {
    "almea": "ALMEA w/o ACS (Table 1)",
    "base": "base model: no LSL, hence no LSC (Table 2 'w/o LSL')",
    "no_lsc": "ALMEA w/o ACS without LSC (Table 2)",
    "no_scl": "ALMEA w/o ACS without L_SCL (Table 2)",
    "no_dml": "ALMEA w/o ACS without L_DML (Table 2)",
    "no_url": "ALMEA w/o ACS without L_URL (Table 2)",
    "no_jal": "ALMEA w/o ACS without L_JAL (Table 2)",
}

#: DS3's α under the relative λ rule: ~4 % of a 1,000-pair pool kept as
#: representatives (docs/ds3.md).
RELATIVE_ALPHA = 0.02

#: Every variant the harness runs, by name. Besides these, ``no_<modality>``
#: drops any modality a pair has.
HARNESS_VARIANTS: dict[str, Variant] = {
    **{
        name: Variant(_MODEL_NOTES.get(name, f"model variant {name}"), model=name)
        for name in VARIANTS
    },
    **{
        f"no_{modality}": Variant(
            f"ALMEA w/o ACS without the {modality} modality (Table 2)", drop=modality
        )
        for modality in PAPER_MODALITIES
    },
    **{
        f"almea+{strategy}": Variant(
            f"ALMEA with {strategy} selection, simulated oracle, test entities "
            "kept out of the pool (no leak)",
            strategy=strategy,
        )
        for strategy in sorted(STRATEGIES)
    },
    **{
        f"almea+{strategy}+entity": Variant(
            f"ALMEA with {strategy} selection, entity questions (what is a's "
            "counterpart?), simulated oracle, no leak",
            strategy=strategy,
            question="entity",
        )
        for strategy in sorted(STRATEGIES)
    },
    "almea+passive": Variant(
        "no strategy: the budget's worth of random true pool links revealed per "
        "round (the baseline), no leak",
        strategy=PASSIVE,
    ),
    "almea+none": Variant(
        "no labels: the rounds' epochs trained on the seeds alone (the reference "
        "that trains exactly as long)",
        strategy=NO_LABELS,
    ),
    "almea+ds3+relative": Variant(
        f"ALMEA with DS3 at λ = α·λ_max, α = {RELATIVE_ALPHA} (a rule that "
        "sparsifies at every pool size), simulated oracle, no leak",
        strategy="ds3",
        lam_rule="relative",
        alpha=RELATIVE_ALPHA,
    ),
    "almea+ds3+relative+entity": Variant(
        f"ALMEA with DS3 at λ = α·λ_max, α = {RELATIVE_ALPHA}, entity questions, "
        "simulated oracle, no leak",
        strategy="ds3",
        lam_rule="relative",
        alpha=RELATIVE_ALPHA,
        question="entity",
    ),
    "almea+ds3+pseudo": Variant(
        "ALMEA as the paper's code runs it: DS3, pseudo oracle, transductive pool",
        strategy="ds3",
        oracle="pseudo",
        transductive=True,
    ),
}


def resolve_variant(name: str) -> Variant:
    """The :class:`Variant` of ``name``; unknown names raise with the valid ones."""
    if name in HARNESS_VARIANTS:
        return HARNESS_VARIANTS[name]
    match = re.fullmatch(r"almea\+(\w+)", name)
    if match and match[1] in STRATEGIES:  # a strategy registered after import
        return Variant(f"ALMEA with {match[1]} selection", strategy=match[1])
    match = re.fullmatch(r"no_(\w+)", name)
    if match:
        return Variant(f"ALMEA w/o ACS without the {match[1]} modality", drop=match[1])
    raise ValueError(
        f"unknown variant {name!r}: one of {sorted(HARNESS_VARIANTS)} or no_<modality>"
    )


def _paper_row(source: str, mrr, hits1, hits10) -> dict[str, Any]:
    """A paper figure; each metric a mean or a ``(mean, std)`` pair, in %."""
    row: dict[str, Any] = {"source": source}
    for name, value in zip(METRICS, (hits1, hits10, mrr)):
        mean, std = value if isinstance(value, tuple) else (value, None)
        row[name] = mean
        if std is not None:
            row.setdefault("std", {})[name] = std
    return row


_T1_WO = "Table 1: ALMEA w/o ACS"
_T1_ALMEA = "Table 1: ALMEA"
# The paper's ALMEA row hides labels (a simulated oracle) in its text, while its
# code runs a pseudo oracle on a transductive pool: both variants are shown it.
#: The paper's figures (%) by (dataset, seed ratio, variant). Arguments of
#: ``_paper_row``: MRR, Hits@1, Hits@10 as in the paper's columns.
PAPER_RESULTS: dict[tuple[str, float, str], dict[str, Any]] = {
    # Table 1, FB15K-DB15K (mean ± std over five runs)
    ("FB15K_DB15K", 0.2, "almea"): _paper_row(
        _T1_WO, (56.00, 0.12), (46.81, 0.14), (73.52, 0.32)
    ),
    ("FB15K_DB15K", 0.5, "almea"): _paper_row(
        _T1_WO, (74.20, 0.27), (67.41, 0.20), (86.31, 0.45)
    ),
    ("FB15K_DB15K", 0.8, "almea"): _paper_row(
        _T1_WO, (84.83, 0.03), (80.45, 0.21), (93.28, 0.18)
    ),
    ("FB15K_DB15K", 0.2, "almea+ds3"): _paper_row(
        _T1_ALMEA, (59.43, 0.10), (50.79, 0.07), (75.64, 0.27)
    ),
    ("FB15K_DB15K", 0.5, "almea+ds3"): _paper_row(
        _T1_ALMEA, (74.16, 0.29), (67.40, 0.32), (86.16, 0.29)
    ),
    ("FB15K_DB15K", 0.8, "almea+ds3"): _paper_row(
        _T1_ALMEA, (83.80, 0.16), (79.08, 0.22), (92.41, 0.48)
    ),
    # Table 1, FB15K-YAGO15K (mean ± std over five runs)
    ("FB15K_YAGO15K", 0.2, "almea"): _paper_row(
        _T1_WO, (46.09, 0.20), (36.89, 0.24), (63.81, 0.21)
    ),
    ("FB15K_YAGO15K", 0.5, "almea"): _paper_row(
        _T1_WO, (67.21, 0.09), (59.61, 0.10), (81.40, 0.35)
    ),
    ("FB15K_YAGO15K", 0.8, "almea"): _paper_row(
        _T1_WO, (80.10, 0.21), (74.48, 0.16), (90.16, 0.21)
    ),
    ("FB15K_YAGO15K", 0.2, "almea+ds3"): _paper_row(
        _T1_ALMEA, (50.92, 0.11), (42.11, 0.16), (67.70, 0.15)
    ),
    ("FB15K_YAGO15K", 0.5, "almea+ds3"): _paper_row(
        _T1_ALMEA, (68.77, 0.10), (61.33, 0.09), (82.50, 0.21)
    ),
    ("FB15K_YAGO15K", 0.8, "almea+ds3"): _paper_row(
        _T1_ALMEA, (78.34, 0.43), (72.27, 0.53), (88.95, 0.51)
    ),
    # Table 2, FB15K-DB15K (80 %), ablations of ALMEA w/o ACS (means)
    ("FB15K_DB15K", 0.8, "base"): _paper_row("Table 2: w/o LSL", 82.80, 77.13, 90.94),
    ("FB15K_DB15K", 0.8, "no_lsc"): _paper_row("Table 2: w/o LSC", 81.73, 76.41, 89.89),
    ("FB15K_DB15K", 0.8, "no_dml"): _paper_row(
        "Table 2: w/o Distribution Match Loss", 82.96, 77.80, 91.36
    ),
    ("FB15K_DB15K", 0.8, "no_url"): _paper_row(
        "Table 2: w/o Uni-modal Reconstruction Loss", 83.46, 78.50, 91.51
    ),
    ("FB15K_DB15K", 0.8, "no_scl"): _paper_row(
        "Table 2: w/o Semantic Calibration Loss", 82.13, 76.83, 90.24
    ),
    ("FB15K_DB15K", 0.8, "no_jal"): _paper_row(
        "Table 2: w/o Joint Alignment Loss", 83.43, 78.25, 91.38
    ),
    ("FB15K_DB15K", 0.8, "no_rel"): _paper_row(
        "Table 2: w/o Relation Modality", 80.93, 75.24, 90.34
    ),
    ("FB15K_DB15K", 0.8, "no_attr"): _paper_row(
        "Table 2: w/o Attribute Modality", 81.90, 76.24, 91.17
    ),
    ("FB15K_DB15K", 0.8, "no_img"): _paper_row(
        "Table 2: w/o Vision Modality", 83.56, 78.58, 91.78
    ),
    # Table 2, FB15K-YAGO15K (80 %), ablations of ALMEA w/o ACS (means)
    ("FB15K_YAGO15K", 0.8, "base"): _paper_row("Table 2: w/o LSL", 78.43, 72.45, 88.83),
    ("FB15K_YAGO15K", 0.8, "no_lsc"): _paper_row(
        "Table 2: w/o LSC", 77.06, 71.21, 87.48
    ),
    ("FB15K_YAGO15K", 0.8, "no_dml"): _paper_row(
        "Table 2: w/o Distribution Match Loss", 78.33, 72.30, 88.86
    ),
    ("FB15K_YAGO15K", 0.8, "no_url"): _paper_row(
        "Table 2: w/o Uni-modal Reconstruction Loss", 78.56, 72.67, 88.99
    ),
    ("FB15K_YAGO15K", 0.8, "no_scl"): _paper_row(
        "Table 2: w/o Semantic Calibration Loss", 77.40, 71.53, 87.53
    ),
    ("FB15K_YAGO15K", 0.8, "no_jal"): _paper_row(
        "Table 2: w/o Joint Alignment Loss", 78.33, 72.45, 88.72
    ),
    ("FB15K_YAGO15K", 0.8, "no_rel"): _paper_row(
        "Table 2: w/o Relation Modality", 75.96, 68.61, 87.84
    ),
    ("FB15K_YAGO15K", 0.8, "no_attr"): _paper_row(
        "Table 2: w/o Attribute Modality", 76.66, 70.03, 88.00
    ),
    ("FB15K_YAGO15K", 0.8, "no_img"): _paper_row(
        "Table 2: w/o Vision Modality", 78.46, 72.27, 89.01
    ),
}
PAPER_RESULTS.update(
    {
        (dataset, ratio, "almea+ds3+pseudo"): row
        for (dataset, ratio, variant), row in list(PAPER_RESULTS.items())
        if variant == "almea+ds3"
    }
)


def paper_alpha(dataset: str, seed_ratio: float) -> float | None:
    return PAPER_DS3_ALPHA.get((dataset, seed_ratio))


@dataclass(frozen=True)
class Cell:
    """One run of the grid; its fields are the key stored in the cell's JSON.

    ``rounds``, ``interval``, ``budget`` and ``alpha`` (DS3's) describe the
    active-learning schedule and are ``0``/``None`` without active learning.
    ``pool_ratio`` is the share of links held out of every split (revealable
    only by an oracle; the key leaves it out when it is ``0``). ``max_grad_norm``
    clips the gradients (not in the paper; the key leaves it out when ``None``).
    ``optimizer`` names the optimiser setting (``OPTIMIZERS``; the key leaves
    out ``"paper"``).
    """

    dataset: str
    seed_ratio: float
    variant: str
    seed: int
    epochs: int
    dim: int = DEFAULT_DIM
    rounds: int = 0
    interval: int = 0
    budget: float = 0.0
    alpha: float | None = None
    pool_ratio: float = 0.0
    prune: float | None = None
    max_grad_norm: float | None = None
    optimizer: str = "paper"

    @property
    def active(self) -> bool:
        return self.rounds > 0

    def paper_schedule(self) -> bool:
        """Whether the cell trains as the paper's Table 9 says."""
        paper_al = (
            self.rounds == _AL_DEFAULTS.rounds
            and self.interval == _AL_DEFAULTS.interval
            and self.budget == _AL_DEFAULTS.budget
            and self.alpha == self.default_alpha()
        )
        return (
            self.epochs == PAPER_SCHEDULE.get(self.dataset, {}).get("epochs")
            and self.dim == DEFAULT_DIM
            and not self.pool_ratio
            and self.prune is None
            and self.max_grad_norm is None
            and self.optimizer == "paper"
            and (paper_al or not self.active)
        )

    def default_alpha(self) -> float | None:
        variant = resolve_variant(self.variant)
        if variant.strategy != "ds3":
            return None
        if variant.alpha is not None:
            return variant.alpha
        return paper_alpha(self.dataset, self.seed_ratio)

    @property
    def name(self) -> str:
        """File-system safe and unique: the defaults of Table 9 are left out."""
        parts = [self.dataset, f"r{self.seed_ratio:g}", self.variant, f"e{self.epochs}"]
        if self.active and (self.rounds, self.interval, self.budget) != (
            _AL_DEFAULTS.rounds,
            _AL_DEFAULTS.interval,
            _AL_DEFAULTS.budget,
        ):
            parts.append(f"R{self.rounds}-i{self.interval}-b{self.budget:g}")
        if self.alpha != self.default_alpha():
            parts.append(f"a{self.alpha:g}")
        if self.dim != DEFAULT_DIM:
            parts.append(f"d{self.dim}")
        if self.pool_ratio:
            parts.append(f"p{self.pool_ratio:g}")
        if self.prune is not None:
            parts.append(f"pr{self.prune:g}")
        if self.max_grad_norm is not None:
            parts.append(f"g{self.max_grad_norm:g}")
        if self.optimizer != "paper":
            parts.append(f"opt{self.optimizer}")
        parts.append(f"s{self.seed}")
        return "-".join(parts)

    def key(self) -> dict[str, Any]:
        key = asdict(self)
        if not self.pool_ratio:
            del key["pool_ratio"]
        for name in ("prune", "max_grad_norm"):
            if key[name] is None:
                del key[name]
        if self.optimizer == "paper":
            del key["optimizer"]
        return key


#: Section 4.5 of the paper: (seed ratio, rounds) of 1 % each, against 20 % seeds.
LOW_RESOURCE = ((0.05, 15), (0.10, 10), (0.15, 5))
LOW_RESOURCE_REFERENCE = 0.2


def ds3_options(
    args: argparse.Namespace, variant: Variant, dataset: str, ratio: float
) -> dict[str, float | None]:
    """A cell's DS3 ``alpha`` (Table 9's when not given) and ``prune``; ``None``
    for other strategies."""
    if variant.strategy != "ds3":
        return {"alpha": None, "prune": None}
    alpha = paper_alpha(dataset, ratio) if args.alpha is None else args.alpha
    if variant.alpha is not None:
        alpha = variant.alpha
    return {"alpha": alpha, "prune": args.prune}


def low_resource_cells(args: argparse.Namespace) -> list[Cell]:
    """Section 4.5: ``r`` seeds plus ``(0.2 - r) / 1 %`` rounds of 1 %, and 20 % seeds.

    Each active-learning setting holds the ``0.2 - r`` links after its seeds out
    of every split (``pool_ratio``), so all four test on the same 80 % of the
    links, and under the default no-leak protocol the pool holds exactly the true
    pairs the budget could find.
    """
    cells = []
    for dataset in args.datasets:
        epochs = ExperimentConfig(dataset=dataset, epochs=args.epochs).resolved_epochs()
        for seed in args.seeds:
            cells.append(
                Cell(dataset, LOW_RESOURCE_REFERENCE, "almea", seed, epochs, args.dim)
            )
            for ratio, rounds in LOW_RESOURCE:
                for name, variant in ((n, resolve_variant(n)) for n in args.variants):
                    if variant.strategy is None:
                        raise ValueError(
                            "--low-resource needs active-learning variants, "
                            f"got {name!r}"
                        )
                    ds3 = ds3_options(args, variant, dataset, LOW_RESOURCE_REFERENCE)
                    cells.append(
                        Cell(
                            dataset,
                            ratio,
                            name,
                            seed,
                            epochs,
                            args.dim,
                            rounds=rounds,
                            interval=args.interval,
                            budget=0.01,
                            pool_ratio=round(LOW_RESOURCE_REFERENCE - ratio, 6),
                            **ds3,
                        )
                    )
    return cells


def build_cells(args: argparse.Namespace) -> list[Cell]:
    """The grid of the command line, in the order it runs (seed before variant)."""
    if getattr(args, "low_resource", False):
        cells = low_resource_cells(args)
    else:
        cells = grid_cells(args)
    clip = getattr(args, "max_grad_norm", None)
    optimizer = getattr(args, "optimizer", "paper")
    return [replace(cell, max_grad_norm=clip, optimizer=optimizer) for cell in cells]


def grid_cells(args: argparse.Namespace) -> list[Cell]:
    """The cells of ``--datasets`` x ``--seed-ratios`` x ``--seeds`` x variants."""
    # Runs without active learning first: their checkpoints warm-start the others.
    names = sorted(args.variants, key=lambda n: resolve_variant(n).strategy is not None)
    variants = {name: resolve_variant(name) for name in names}
    cells = []
    for dataset in args.datasets:
        epochs = ExperimentConfig(dataset=dataset, epochs=args.epochs).resolved_epochs()
        for ratio in args.seed_ratios:
            for seed in args.seeds:
                for name, variant in variants.items():
                    schedule = {}
                    if variant.strategy is not None:
                        schedule = dict(
                            rounds=args.rounds,
                            interval=args.interval,
                            budget=args.budget,
                            **ds3_options(args, variant, dataset, ratio),
                        )
                    cells.append(
                        Cell(
                            dataset,
                            ratio,
                            name,
                            seed,
                            epochs,
                            args.dim,
                            **schedule,
                            pool_ratio=args.pool_ratio,
                        )
                    )
    return cells


@cache
def pair_modalities(dataset: str, data_dir: str | None, cache_dir: str) -> tuple:
    """The modalities of the model on ``dataset``: graph plus its feature ones."""
    pair = experiment.load_pair(dataset, data_dir=data_dir, cache_dir=cache_dir)
    return ("graph", *pair.modalities)


def experiment_config(cell: Cell, options: dict[str, Any]) -> ExperimentConfig:
    """The :class:`ExperimentConfig` that runs ``cell``."""
    variant = resolve_variant(cell.variant)
    modalities = None
    if variant.drop is not None:
        available = pair_modalities(
            cell.dataset, options["data_dir"], options["cache_dir"]
        )
        if variant.drop not in available:
            raise ValueError(
                f"variant {cell.variant!r}: {cell.dataset} has no modality "
                f"{variant.drop!r} (it has {list(available)})"
            )
        modalities = [m for m in available if m != variant.drop]
    active = None
    if variant.strategy is not None:
        active = ActiveLearningConfig(
            interval=cell.interval,
            rounds=cell.rounds,
            budget=cell.budget,
            strategy=variant.strategy,
            strategy_kwargs={
                name: value
                for name, value in (
                    ("alpha", cell.alpha),
                    ("prune", cell.prune),
                    (
                        "lam_rule",
                        None if variant.lam_rule == "paper" else variant.lam_rule,
                    ),
                )
                if value is not None
            },
            oracle=variant.oracle,
            transductive=variant.transductive,
            question=variant.question,
        )
    return ExperimentConfig(
        dataset=cell.dataset,
        data_dir=options["data_dir"],
        cache_dir=options["cache_dir"],
        seed_ratio=cell.seed_ratio,
        pool_ratio=cell.pool_ratio,
        seed=cell.seed,
        epochs=cell.epochs,
        eval_every=options["eval_every"],
        device=options["device"],
        output=str(Path(options["work_dir"]) / cell.name),
        variant=variant.model,
        modalities=modalities,
        max_grad_norm=cell.max_grad_norm,
        optimizer=cell.optimizer,
        model={"dim": cell.dim},
        active=active,
        progress=options["progress"],
    )


def cell_path(cell: Cell, results: str | Path) -> Path:
    return Path(results) / f"{cell.name}.json"


def is_done(cell: Cell, results: str | Path) -> bool:
    """Whether ``cell``'s JSON exists; one holding another key is an error."""
    path = cell_path(cell, results)
    if not path.exists():
        return False
    stored = json.loads(path.read_text()).get("cell")
    if stored != cell.key():
        raise ValueError(
            f"{path} holds cell {stored}, not {cell.key()}: move it away to rerun"
        )
    return True


def warm_start_from(cell: Cell, work_dir: str | Path) -> tuple[Cell, Path] | None:
    """Start a cell from the final checkpoint of the same seed's warm-up run.

    The rounds of an ``almea+*`` cell follow the same warm-up as the cell of its
    model variant with the same seed (same initialisation, data and random
    stream). Training sees only the seed links, which a pool ratio leaves
    unchanged, so the warm-up at ``pool_ratio = 0`` is the same run too: a cell
    with a pool ratio (active or not) can start from it and only its evaluation
    differs. When such a run's final checkpoint (at the warm-up's epoch) is
    there, the cell starts from it and the warm-up is not trained again. Returns
    the cell to start from and its checkpoint, or ``None``.
    """
    variant = resolve_variant(cell.variant)
    if variant.drop is not None or not (cell.active or cell.pool_ratio):
        return None
    warmup = replace(
        cell,
        variant=variant.model,
        rounds=0,
        interval=0,
        budget=0.0,
        alpha=None,
        prune=None,
    )
    for sibling in dict.fromkeys([warmup, replace(warmup, pool_ratio=0.0)]):
        checkpoint = Path(work_dir) / sibling.name / "checkpoint.pt"
        if sibling == cell or not checkpoint.exists():
            continue
        state = load_checkpoint_state(checkpoint)
        if "trainer" in state or state.get("epoch") != cell.epochs:
            continue
        log.info("%s: warm-up taken from %s", cell.name, sibling.name)
        return sibling, checkpoint
    return None


def evaluated_pool_ratio(sibling: Cell, results: str | Path) -> float:
    """The pool ratio whose test links the epochs of ``sibling``'s history saw.

    A run that was itself warm-started carries the history it started from.
    """
    path = cell_path(sibling, results)
    if path.exists():
        inherited = json.loads(path.read_text()).get("warm_start_pool_ratio")
        if inherited is not None:
            return inherited
    return sibling.pool_ratio


def run_cell(cell: Cell, options: dict[str, Any]) -> Path:
    """Run ``cell`` in this process (resuming its checkpoint) and write its JSON."""
    config = experiment_config(cell, options)
    limit_heap_fragmentation()
    if options.get("threads"):
        torch.set_num_threads(options["threads"])
    out = Path(config.output)
    resume = (out / "checkpoint.pt").exists()
    warm_start = start_from = None
    if resume:
        log.info("%s: resuming from %s", cell.name, out / "checkpoint.pt")
    elif options.get("warm_start", True):
        found = warm_start_from(cell, options["work_dir"])
        if found is not None:
            warm_start, start_from = found
    # A cell's folder is the harness's own: an attempt that left no checkpoint
    # is replaced.
    result = experiment.run_experiment(
        config, resume=resume, overwrite=not resume, warm_start=start_from
    )
    if result["status"] != "done":
        raise RuntimeError(f"{cell.name}: run ended with status {result['status']!r}")
    record = {
        "cell": cell.key(),
        "status": result["status"],
        "resumed": resume,
        "warm_start": None if warm_start is None else warm_start.name,
        # The epochs copied from the warm-up (log.csv, training.png) were evaluated
        # on the test links of this pool ratio; round 0 and on, on this cell's.
        "warm_start_pool_ratio": (
            None
            if warm_start is None
            else evaluated_pool_ratio(warm_start, options["results"])
        ),
        "protocol": result["protocol"],
        "metrics": result["metrics"],
        "rounds": result["rounds"],
        "timing": result["timing"],
        "latent_diagnostics": result["latent_diagnostics"],
        "config": result["config"],
        "command": options["command"],
    }
    path = cell_path(cell, options["results"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, path)
    return path


def run_grid(cells: list[Cell], options: dict[str, Any], *, isolate: bool) -> int:
    """Run the cells not done yet; returns the number that failed."""
    pending = [cell for cell in cells if not is_done(cell, options["results"])]
    for cell in cells:
        if cell not in pending:
            log.info("skip %s: done", cell.name)
    for cell in pending:  # every drop variant checked before anything trains
        experiment_config(cell, {**options, "progress": False})
    failed = []
    for index, cell in enumerate(pending, 1):
        log.info("cell %d/%d: %s", index, len(pending), cell.name)
        if isolate:
            payload = json.dumps({"cell": cell.key(), "options": options})
            child = [sys.executable, str(Path(__file__).resolve()), "--run-cell"]
            child += [payload, *(["-v"] if options["verbose"] else [])]
            ok = subprocess.run(child).returncode == 0
        else:
            try:
                run_cell(cell, options)
                ok = True
            except Exception:
                log.exception("%s failed", cell.name)
                ok = False
        if ok:
            log.info("%s: written %s", cell.name, cell_path(cell, options["results"]))
        else:
            failed.append(cell.name)
    if failed:
        log.error("%d cell(s) failed: %s", len(failed), ", ".join(failed))
    return len(failed)


def load_records(results: str | Path) -> list[dict[str, Any]]:
    """Every cell JSON under ``results`` (other JSON files are ignored)."""
    records = []
    for path in sorted(Path(results).glob("*.json")):
        if path.name in SUMMARY_NAMES:
            continue
        record = json.loads(path.read_text())
        if "cell" not in record:
            log.warning("%s: not a cell JSON, ignored", path)
            continue
        records.append(record)
    return records


def _group_key(cell: dict[str, Any]) -> tuple:
    return tuple((k, v) for k, v in Cell(**cell).key().items() if k != "seed")


def _mean_std(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (``ddof=1``; ``None`` for one value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def summary_rows(records: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """One row per group of cells that differ only in the seed."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[_group_key(record["cell"])].append(record)
    order = {name: i for i, name in enumerate(HARNESS_VARIANTS)}
    rows = []
    for group in groups.values():
        group.sort(key=lambda r: r["cell"]["seed"])
        cell, protocol = group[0]["cell"], group[0]["protocol"]
        row = {k: v for k, v in cell.items() if k != "seed"}
        row.update(
            strategy=protocol.get("strategy"),
            oracle=protocol.get("oracle"),
            test_links_in_pool=protocol.get("test_links_in_pool"),
            modalities=protocol.get("modalities"),
            n=len(group),
            seeds=[r["cell"]["seed"] for r in group],
            metric=metric,
        )
        row["pool_ratio"] = cell.get("pool_ratio", 0.0)
        for name in METRICS:
            row[name] = _mean_std([r["metrics"][metric][name] for r in group])
        for name in ("asked", "correct"):  # over all rounds: what the oracle saw
            totals = [sum(x[name] for x in r.get("rounds", [])) for r in group]
            row[name] = _mean_std(totals) if cell["rounds"] else None
        # The evaluation after each round (round 0: the warm-up), mean over seeds.
        curves = [r.get("rounds", []) for r in group]
        row["round_mrr"] = [
            statistics.fmean(curve[i]["mrr"] for curve in curves)
            for i in range(min(map(len, curves)))
        ]
        seconds = [
            r["timing"].get("seconds_per_epoch_median")
            for r in group
            if r["timing"].get("seconds_per_epoch_median") is not None
        ]
        memory = [r["timing"]["peak_memory_mib"] for r in group]
        row["seconds_per_epoch_median"] = (
            statistics.median(seconds) if seconds else None
        )
        row["peak_memory_mib_max"] = max(memory)
        row["paper"] = paper_reference(Cell(**cell))
        rows.append(row)
    rows.sort(
        key=lambda r: (
            r["dataset"],
            r["seed_ratio"],
            r["epochs"],
            order.get(r["variant"], len(order)),
            r["variant"],
            r["rounds"],
            r["interval"],
            r["budget"],
            r["dim"],
            r["pool_ratio"],
        )
    )
    return rows


def paper_reference(cell: Cell) -> dict[str, Any] | None:
    """The paper's figure for ``cell``'s row, if the paper has that exact row."""
    if not cell.paper_schedule():
        return None
    return PAPER_RESULTS.get((cell.dataset, cell.seed_ratio, cell.variant))


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def paired_t_tests(
    records: list[dict[str, Any]], a: str, b: str, metric: str
) -> list[dict[str, Any]]:
    """Paired t-tests of variant ``a`` against ``b`` over their common seeds.

    One test per dataset, seed ratio, epochs and dimension (and schedule, for an
    active-learning side) where both have at least two common seeds, on MRR and
    Hits@1; ``mean_diff`` is ``a - b``.
    """
    from scipy.stats import ttest_rel

    if a == b:
        raise ValueError(f"--compare needs two different variants, got {a!r} twice")
    schedule_fields = ("rounds", "interval", "budget", "alpha", "prune")
    sides: dict[tuple, dict[tuple, dict[int, dict]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for record in records:
        cell = record["cell"]
        if cell["variant"] not in (a, b):
            continue
        setting = (
            cell["dataset"],
            cell["seed_ratio"],
            cell["epochs"],
            cell["dim"],
            cell.get("pool_ratio", 0.0),
        )
        schedule = tuple(cell.get(k) for k in schedule_fields)
        sides[setting][(cell["variant"], schedule)][cell["seed"]] = record
    tests = []
    for setting, groups in sorted(sides.items()):
        for (va, sched_a), seeds_a in groups.items():
            for (vb, sched_b), seeds_b in groups.items():
                if (va, vb) != (a, b):
                    continue
                common = sorted(set(seeds_a) & set(seeds_b))
                if len(common) < 2:
                    continue
                test = {
                    "a": a,
                    "b": b,
                    "dataset": setting[0],
                    "seed_ratio": setting[1],
                    "epochs": setting[2],
                    "dim": setting[3],
                    "pool_ratio": setting[4],
                    "schedule_a": dict(zip(schedule_fields, sched_a)),
                    "schedule_b": dict(zip(schedule_fields, sched_b)),
                    "metric": metric,
                    "n": len(common),
                    "seeds": common,
                }
                for name in ("mrr", "hits@1"):
                    xa = [seeds_a[s]["metrics"][metric][name] for s in common]
                    xb = [seeds_b[s]["metrics"][metric][name] for s in common]
                    t, p = ttest_rel(xa, xb)
                    test[name] = {
                        "t": _finite(t),
                        "p": _finite(p),
                        "mean_diff": statistics.fmean(x - y for x, y in zip(xa, xb)),
                    }
                tests.append(test)
    if not tests:
        log.warning("--compare %s %s: no setting with 2 common seeds", a, b)
    return tests


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _fmt_pool(ratio: float) -> str:
    return f"{ratio:g}" if ratio else "-"


def _fmt_mean_std(stat: dict[str, float | None]) -> str:
    return f"{_fmt(stat['mean'])} ± {_fmt(stat['std'])}"


def _fmt_paper(paper: dict[str, Any] | None, name: str) -> str:
    if paper is None:
        return ""
    std = paper.get("std", {}).get(name)
    return _fmt(paper[name]) + ("" if std is None else f" ± {std:.2f}")


def format_markdown(
    rows: list[dict[str, Any]], tests: list[dict[str, Any]], metric: str
) -> str:
    """The summary as Markdown tables (metrics in %, mean ± sample std)."""
    head = (
        "dataset | ratio | pool | epochs | variant | strategy | oracle | "
        "test in pool | asked | true | n | seeds | Hits@1 | Hits@10 | MRR | "
        "s/epoch | peak MiB | paper Hits@1 | paper Hits@10 | paper MRR | paper row"
    )
    lines = [
        f"# Accuracy ({metric}, %, mean ± sample std over seeds)",
        "",
        "pool: share of links held out of every split (only an oracle reveals "
        "them); asked / true: pairs put to the oracle over all rounds and how "
        "many were links (mean over seeds).",
        "",
        f"| {head} |",
        "|" + "---|" * (head.count("|") + 1),
    ]
    for row in rows:
        variant = row["variant"]
        if row["rounds"]:
            variant += f" (R{row['rounds']}/i{row['interval']}/b{row['budget']:g}"
            variant += "" if row["alpha"] is None else f"/a{row['alpha']:g}"
            variant += "" if row.get("prune") is None else f"/pr{row['prune']:g}"
            variant += ")"
        if row["dim"] != DEFAULT_DIM:
            variant += f" d{row['dim']}"
        if row.get("max_grad_norm") is not None:
            variant += f" clip{row['max_grad_norm']:g}"
        if row.get("optimizer", "paper") != "paper":
            variant += f" {row['optimizer']}-optimizer"
        paper = row["paper"]
        cells = [
            row["dataset"],
            f"{row['seed_ratio']:g}",
            _fmt_pool(row["pool_ratio"]),
            str(row["epochs"]),
            variant,
            row["strategy"] or "-",
            row["oracle"] or "-",
            "-" if row["strategy"] is None else str(row["test_links_in_pool"]),
            *(
                "-" if row[name] is None else _fmt(row[name]["mean"], 1)
                for name in ("asked", "correct")
            ),
            str(row["n"]),
            " ".join(map(str, row["seeds"])),
            *(_fmt_mean_std(row[name]) for name in METRICS),
            _fmt(row["seconds_per_epoch_median"], 3),
            _fmt(row["peak_memory_mib_max"], 0),
            *(_fmt_paper(paper, name) for name in METRICS),
            "" if paper is None else paper["source"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    active = [row for row in rows if row["round_mrr"]]
    if active:
        rounds = max(len(row["round_mrr"]) for row in active)
        lines += [
            "",
            "## MRR after each active-learning round (round 0: the warm-up; "
            "mean over seeds; evaluated on the row's test links)",
            "",
            "| dataset | ratio | pool | variant | "
            + " | ".join(f"round {i}" for i in range(rounds))
            + " |",
            "|" + "---|" * (4 + rounds),
        ]
        for row in active:
            curve = [_fmt(x) for x in row["round_mrr"]]
            curve += [""] * (rounds - len(curve))
            lines.append(
                f"| {row['dataset']} | {row['seed_ratio']:g} | "
                f"{_fmt_pool(row['pool_ratio'])} | {row['variant']} | "
                + " | ".join(curve)
                + " |"
            )
    if tests:
        lines += [
            "",
            f"## Paired t-tests ({metric}; difference = A - B)",
            "",
            "| A | B | dataset | ratio | pool | epochs | n | MRR diff | MRR t "
            "| MRR p | Hits@1 diff | Hits@1 t | Hits@1 p |",
            "|" + "---|" * 13,
        ]
        for test in tests:
            stats = []
            for name in ("mrr", "hits@1"):
                s = test[name]
                stats += [_fmt(s["mean_diff"]), _fmt(s["t"]), _fmt(s["p"], 4)]
            lines.append(
                f"| {test['a']} | {test['b']} | {test['dataset']} | "
                f"{test['seed_ratio']:g} | {_fmt_pool(test['pool_ratio'])} | "
                f"{test['epochs']} | {test['n']} | " + " | ".join(stats) + " |"
            )
    return "\n".join(lines) + "\n"


def summarise(
    results: str | Path, *, metric: str, compare: list[tuple[str, str]]
) -> dict[str, Any]:
    """Write ``summary.json`` and ``summary.md`` into ``results``; return the JSON."""
    records = load_records(results)
    rows = summary_rows(records, metric)
    tests = [t for a, b in compare for t in paired_t_tests(records, a, b, metric)]
    summary = {"metric": metric, "rows": rows, "comparisons": tests}
    results = Path(results)
    write_json(summary, results / "summary.json")
    markdown = format_markdown(rows, tests, metric)
    atomic_write_text(markdown, results / "summary.md")
    print(markdown, end="")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid = parser.add_argument_group("the grid")
    grid.add_argument("--datasets", nargs="+", choices=sorted(PAPER_SCHEDULE))
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
        help="paired t-test of variant A against B (repeatable)",
    )
    parser.add_argument("--run-cell", help=SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)
    try:
        if args.run_cell:
            payload = json.loads(args.run_cell)
            run_cell(Cell(**payload["cell"]), payload["options"])
            return 0
        if args.summarise:
            summarise(args.results, metric=args.metric, compare=args.compare)
            return 0
        if not args.datasets:
            raise ValueError("--datasets is required to run cells")
        cells = build_cells(args)
        if args.dry_run:
            for cell in cells:
                done = is_done(cell, args.results)
                print(f"{'done' if done else 'todo'}  {cell.name}")
            return 0
        options = {
            "data_dir": args.data_dir,
            "cache_dir": args.cache_dir,
            "results": str(args.results),
            "work_dir": str(args.work_dir),
            "device": args.device,
            "eval_every": args.eval_every,
            "threads": args.threads,
            "progress": not args.no_progress,
            "warm_start": not args.no_warm_start,
            "verbose": args.verbose,
            "command": [
                "benchmarks/accuracy.py",
                *(sys.argv[1:] if argv is None else argv),
            ],
        }
        return 1 if run_grid(cells, options, isolate=not args.in_process) else 0
    except (ValueError, FileNotFoundError) as error:
        print(f"accuracy.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
