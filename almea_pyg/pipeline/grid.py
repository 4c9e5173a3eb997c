"""A grid of runs: the paper's Table 1 / Table 2 cells, run with resume.

A cell is one (dataset, seed ratio, variant, warm-up epochs, seed) run of
:func:`~almea_pyg.pipeline.experiment.run_experiment`; the variants are those of
:mod:`~almea_pyg.pipeline.variants`. :meth:`Grid.cells` lists them in
the order they run (dataset, ratio, seed, then variant) and :func:`run_grid` runs
those not done yet, each in a fresh process (``python -m almea_pyg.pipeline.grid
--run-cell ...``) so that its peak memory is its own; each writes one JSON into
:attr:`RunOptions.results` and its run folder under :attr:`RunOptions.work_dir`.
An interrupted cell resumes from its last checkpoint, and an active-learning cell
whose warm-up is a done run without active learning starts from that run's final
checkpoint (:func:`warm_start_from`). ``benchmarks/accuracy.py`` is the command
line over it; :mod:`~almea_pyg.pipeline.stats` and
:mod:`~almea_pyg.pipeline.report` summarise the cell files.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch

from almea_pyg.active.loop import ActiveLearningConfig
from almea_pyg.pipeline import experiment
from almea_pyg.pipeline.experiment import (
    DEFAULT_DIM,
    PAPER_SCHEDULE,
    ExperimentConfig,
    write_json,
)
from almea_pyg.pipeline.variants import Variant, resolve_variant
from almea_pyg.train.memory import limit_heap_fragmentation
from almea_pyg.train.trainer import load_checkpoint_state

#: The module's import name, also when a cell's child runs it with ``python -m``.
MODULE = "almea_pyg.pipeline.grid"

log = logging.getLogger(MODULE)

#: Files of a results folder that are not cells.
SUMMARY_NAMES = ("summary.json",)

_AL_DEFAULTS = ActiveLearningConfig()
#: The rounds' learning-rate options at which the rate stays constant.
_CONSTANT_ROUND_LR = {
    "lr_decay": _AL_DEFAULTS.lr_decay,
    "rewarmup": _AL_DEFAULTS.rewarmup,
}

#: Table 9(a) of the paper: the DS3 sparsification factor alpha per seed ratio.
PAPER_DS3_ALPHA: dict[tuple[str, float], float] = {
    ("FB15K_DB15K", 0.2): 0.35,
    ("FB15K_DB15K", 0.5): 0.45,
    ("FB15K_DB15K", 0.8): 0.95,
    ("FB15K_YAGO15K", 0.2): 0.25,
    ("FB15K_YAGO15K", 0.5): 0.35,
    ("FB15K_YAGO15K", 0.8): 0.45,
}

#: Section 4.5 of the paper: (seed ratio, rounds) of 1 % each, against 20 % seeds.
LOW_RESOURCE = ((0.05, 15), (0.10, 10), (0.15, 5))
LOW_RESOURCE_REFERENCE = 0.2


def paper_alpha(dataset: str, seed_ratio: float) -> float | None:
    """DS3's α of Table 9 for ``dataset`` at ``seed_ratio``, if the paper gives it."""
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
    out ``"paper"``). ``lr_decay`` and ``rewarmup`` set the learning rate of the
    rounds (:class:`~almea_pyg.active.ActiveLearningConfig`; not in the paper;
    the key leaves them out at ``1.0`` and ``0``). ``fanouts`` trains in mini-batches
    on sampled neighbourhoods (:class:`~almea_pyg.train.Trainer`; the key leaves
    it out at ``None``, the whole graph), with the whole graph's forward values
    where ``full_forward`` (left out at ``False``), run every
    ``full_forward_every`` steps (left out at ``1``).
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
    lr_decay: float = 1.0
    rewarmup: int = 0
    fanouts: tuple[int, ...] | None = None
    full_forward: bool = False
    full_forward_every: int = 1

    def __post_init__(self) -> None:
        if self.fanouts is not None:  # a JSON key holds a list
            object.__setattr__(self, "fanouts", tuple(self.fanouts))
        if self.full_forward and self.fanouts is None:
            raise ValueError("full_forward needs fanouts (mini-batch training)")
        if self.full_forward_every != 1 and not self.full_forward:
            raise ValueError("full_forward_every needs full_forward")

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
            and self.fanouts is None
            and not self.full_forward
            and not self.round_lr()
            and (paper_al or not self.active)
        )

    def round_lr(self) -> dict[str, float]:
        """The rounds' learning-rate options that differ from a constant rate."""
        return {
            name: value
            for name, value in (
                ("lr_decay", self.lr_decay),
                ("rewarmup", self.rewarmup),
            )
            if value != _CONSTANT_ROUND_LR[name]
        }

    def default_alpha(self) -> float | None:
        """DS3's α when none is given: the variant's, else Table 9's."""
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
        if self.fanouts is not None:
            parts.append("f" + "x".join(map(str, self.fanouts)))
        if self.full_forward:
            every = self.full_forward_every
            parts.append("ff" if every == 1 else f"ff{every}")
        round_lr = self.round_lr()
        if "lr_decay" in round_lr:
            parts.append(f"ld{self.lr_decay:g}")
        if "rewarmup" in round_lr:
            parts.append(f"rw{self.rewarmup}")
        parts.append(f"s{self.seed}")
        return "-".join(parts)

    def key(self) -> dict[str, Any]:
        """The fields stored in the cell's JSON; fields added later are left out at
        their default, so that older files still match."""
        key = asdict(self)
        if not self.pool_ratio:
            del key["pool_ratio"]
        for name in ("prune", "max_grad_norm", "fanouts"):
            if key[name] is None:
                del key[name]
        if self.fanouts is not None:
            key["fanouts"] = list(self.fanouts)
        if not self.full_forward:
            del key["full_forward"]
        if self.full_forward_every == 1:
            del key["full_forward_every"]
        if self.optimizer == "paper":
            del key["optimizer"]
        for name in _CONSTANT_ROUND_LR.keys() - self.round_lr().keys():
            del key[name]
        return key


def training_label(cell: dict[str, Any]) -> str:
    """How a cell's key trained beyond the paper's optimiser and constant learning
    rate on the whole graph, as a label suffix (e.g. ``" clip1 lr-decay0.8"``;
    ``""`` for none)."""
    label = ""
    if cell.get("max_grad_norm") is not None:
        label += f" clip{cell['max_grad_norm']:g}"
    if cell.get("optimizer", "paper") != "paper":
        label += f" {cell['optimizer']}-optimizer"
    if cell.get("fanouts") is not None:
        label += " fanouts" + "x".join(map(str, cell["fanouts"]))
    if cell.get("full_forward"):
        label += " full-forward"
    if cell.get("full_forward_every", 1) != 1:
        label += f" every{cell['full_forward_every']}"
    if cell.get("lr_decay") is not None:
        label += f" lr-decay{cell['lr_decay']:g}"
    if cell.get("rewarmup") is not None:
        label += f" rewarmup{cell['rewarmup']}"
    return label


def variant_label(cell: dict[str, Any]) -> str:
    """A cell key's variant and :func:`training_label`, e.g. ``"almea clip1"``:
    the name its seeds are averaged and compared under."""
    return cell["variant"] + training_label(cell)


@dataclass
class Grid:
    """The cells of a benchmark: ``datasets`` x ``seed_ratios`` x ``seeds`` x
    ``variants``, or with ``low_resource`` the settings of the paper's Section 4.5.

    Args:
        datasets: Names of :data:`~almea_pyg.pipeline.experiment.PAPER_SCHEDULE`.
        seed_ratios: Shares of the links given as seeds. (default: ``(0.2,)``)
        variants: Names of :data:`~almea_pyg.pipeline.variants.HARNESS_VARIANTS`
            or ``no_<modality>``.
        seeds: Random seeds. (default: ``(0, 1, 2, 3, 4)``)
        epochs: Warm-up epochs. (default: Table 9's per dataset)
        dim: Embedding size. (default: ``300``)
        low_resource: Section 4.5 instead of a grid (:func:`low_resource_cells`).
        pool_ratio: Share of links in no split, revealable only by an oracle.
        max_grad_norm: Clip the gradients' global norm (not in the paper).
        optimizer: A key of :data:`~almea_pyg.pipeline.experiment.OPTIMIZERS`.
        fanouts: Mini-batch training, that many sampled neighbours per node at
            each hop. (default: the whole graph)
        full_forward: With ``fanouts``, forward values from the whole graph,
            gradients from the sample (:class:`~almea_pyg.train.Trainer`).
        full_forward_every: With ``full_forward``, the whole-graph pass every
            this many steps. (default: ``1``)
        lr_decay, rewarmup: The learning rate of the rounds (not in the paper;
            :class:`~almea_pyg.active.ActiveLearningConfig`).
        rounds, interval, budget: The active-learning schedule of ``almea+*``
            variants. (default: Table 9's)
        alpha: DS3's α. (default: the variant's, else Table 9's)
        prune: DS3 keeps this top fraction of its candidate pool (App. B.6).
    """

    datasets: Sequence[str]
    seed_ratios: Sequence[float] = (0.2,)
    variants: Sequence[str] = ("almea",)
    seeds: Sequence[int] = (0, 1, 2, 3, 4)
    epochs: int | None = None
    dim: int = DEFAULT_DIM
    low_resource: bool = False
    pool_ratio: float = 0.0
    max_grad_norm: float | None = None
    optimizer: str = "paper"
    fanouts: Sequence[int] | None = None
    full_forward: bool = False
    full_forward_every: int = 1
    lr_decay: float = _AL_DEFAULTS.lr_decay
    rewarmup: int = _AL_DEFAULTS.rewarmup
    rounds: int = _AL_DEFAULTS.rounds
    interval: int = _AL_DEFAULTS.interval
    budget: float = _AL_DEFAULTS.budget
    alpha: float | None = None
    prune: float | None = None

    def cells(self) -> list[Cell]:
        """The grid's cells in the order they run (seed before variant)."""
        cells = low_resource_cells(self) if self.low_resource else grid_cells(self)
        round_lr = {"lr_decay": self.lr_decay, "rewarmup": self.rewarmup}
        return [
            replace(
                cell,
                max_grad_norm=self.max_grad_norm,
                optimizer=self.optimizer,
                fanouts=self.fanouts,
                full_forward=self.full_forward,
                full_forward_every=self.full_forward_every,
                **(round_lr if cell.active else {}),
            )
            for cell in cells
        ]

    def warmup_epochs(self, dataset: str) -> int:
        """The warm-up of ``dataset``'s cells: ``epochs``, else Table 9's."""
        return ExperimentConfig(dataset=dataset, epochs=self.epochs).resolved_epochs()


def ds3_options(
    grid: Grid, variant: Variant, dataset: str, ratio: float
) -> dict[str, float | None]:
    """A cell's DS3 ``alpha`` (Table 9's when not given) and ``prune``; ``None``
    for other strategies."""
    if variant.strategy != "ds3":
        return {"alpha": None, "prune": None}
    alpha = paper_alpha(dataset, ratio) if grid.alpha is None else grid.alpha
    if variant.alpha is not None:
        alpha = variant.alpha
    return {"alpha": alpha, "prune": grid.prune}


def low_resource_cells(grid: Grid) -> list[Cell]:
    """Section 4.5: ``r`` seeds plus ``(0.2 - r) / 1 %`` rounds of 1 %, and 20 % seeds.

    Each active-learning setting holds the ``0.2 - r`` links after its seeds out
    of every split (``pool_ratio``), so all four test on the same 80 % of the
    links, and under the default no-leak protocol the pool holds exactly the true
    pairs the budget could find.
    """
    cells = []
    for dataset in grid.datasets:
        epochs = grid.warmup_epochs(dataset)
        for seed in grid.seeds:
            cells.append(
                Cell(dataset, LOW_RESOURCE_REFERENCE, "almea", seed, epochs, grid.dim)
            )
            for ratio, rounds in LOW_RESOURCE:
                for name, variant in ((n, resolve_variant(n)) for n in grid.variants):
                    if variant.strategy is None:
                        raise ValueError(
                            "--low-resource needs active-learning variants, "
                            f"got {name!r}"
                        )
                    ds3 = ds3_options(grid, variant, dataset, LOW_RESOURCE_REFERENCE)
                    cells.append(
                        Cell(
                            dataset,
                            ratio,
                            name,
                            seed,
                            epochs,
                            grid.dim,
                            rounds=rounds,
                            interval=grid.interval,
                            budget=0.01,
                            pool_ratio=round(LOW_RESOURCE_REFERENCE - ratio, 6),
                            **ds3,
                        )
                    )
    return cells


def grid_cells(grid: Grid) -> list[Cell]:
    """The cells of ``datasets`` x ``seed_ratios`` x ``seeds`` x ``variants``."""
    # Runs without active learning first: their checkpoints warm-start the others.
    names = sorted(grid.variants, key=lambda n: resolve_variant(n).strategy is not None)
    variants = {name: resolve_variant(name) for name in names}
    cells = []
    for dataset in grid.datasets:
        epochs = grid.warmup_epochs(dataset)
        for ratio in grid.seed_ratios:
            for seed in grid.seeds:
                for name, variant in variants.items():
                    schedule = {}
                    if variant.strategy is not None:
                        schedule = dict(
                            rounds=grid.rounds,
                            interval=grid.interval,
                            budget=grid.budget,
                            **ds3_options(grid, variant, dataset, ratio),
                        )
                    cells.append(
                        Cell(
                            dataset,
                            ratio,
                            name,
                            seed,
                            epochs,
                            grid.dim,
                            **schedule,
                            pool_ratio=grid.pool_ratio,
                        )
                    )
    return cells


@dataclass
class RunOptions:
    """Where and how the cells run: nothing here is part of a cell's key.

    Args:
        results: Folder of the cell JSONs (one per cell, committed).
        work_dir: Folder of the cells' run folders (checkpoints, plots: derived
            from the data, never committed).
        data_dir: Local copy of the datasets' files.
        cache_dir: Processed-pair cache. (default: the library's)
        device: Torch device of every cell.
        eval_every: Evaluate every this many epochs (``0``: at the end only).
        threads: Torch threads. (default: torch's)
        progress: Progress bars.
        warm_start: Start an active-learning cell from its warm-up's run
            (:func:`warm_start_from`).
        verbose: The child processes log at INFO.
        command: The command line, stored in every cell JSON.
    """

    results: str
    work_dir: str
    data_dir: str | None = None
    cache_dir: str | None = None
    device: str = "cpu"
    eval_every: int = 0
    threads: int | None = None
    progress: bool = True
    warm_start: bool = True
    verbose: bool = False
    command: list[str] = field(default_factory=list)


@cache
def pair_modalities(dataset: str, data_dir: str | None, cache_dir: str) -> tuple:
    """The modalities of the model on ``dataset``: graph plus its feature ones."""
    pair = experiment.load_pair(dataset, data_dir=data_dir, cache_dir=cache_dir)
    return ("graph", *pair.modalities)


def experiment_config(cell: Cell, options: RunOptions) -> ExperimentConfig:
    """The :class:`ExperimentConfig` that runs ``cell``."""
    variant = resolve_variant(cell.variant)
    modalities = None
    if variant.drop is not None:
        available = pair_modalities(cell.dataset, options.data_dir, options.cache_dir)
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
            lr_decay=cell.lr_decay,
            rewarmup=cell.rewarmup,
        )
    return ExperimentConfig(
        dataset=cell.dataset,
        data_dir=options.data_dir,
        cache_dir=options.cache_dir,
        seed_ratio=cell.seed_ratio,
        pool_ratio=cell.pool_ratio,
        seed=cell.seed,
        epochs=cell.epochs,
        eval_every=options.eval_every,
        device=options.device,
        output=str(Path(options.work_dir) / cell.name),
        variant=variant.model,
        modalities=modalities,
        max_grad_norm=cell.max_grad_norm,
        optimizer=cell.optimizer,
        fanouts=None if cell.fanouts is None else list(cell.fanouts),
        full_forward=cell.full_forward,
        full_forward_every=cell.full_forward_every,
        model={"dim": cell.dim},
        active=active,
        progress=options.progress,
    )


def cell_path(cell: Cell, results: str | Path) -> Path:
    """Where ``cell``'s JSON is: ``results/<cell name>.json``."""
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
        **_CONSTANT_ROUND_LR,
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


def run_cell(cell: Cell, options: RunOptions) -> Path:
    """Run ``cell`` in this process (resuming its checkpoint) and write its JSON."""
    config = experiment_config(cell, options)
    limit_heap_fragmentation()
    if options.threads:
        torch.set_num_threads(options.threads)
    out = Path(config.output)
    resume = (out / "checkpoint.pt").exists()
    warm_start = start_from = None
    if resume:
        log.info("%s: resuming from %s", cell.name, out / "checkpoint.pt")
    elif options.warm_start:
        found = warm_start_from(cell, options.work_dir)
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
            else evaluated_pool_ratio(warm_start, options.results)
        ),
        "protocol": result["protocol"],
        "metrics": result["metrics"],
        "rounds": result["rounds"],
        "timing": result["timing"],
        "latent_diagnostics": result["latent_diagnostics"],
        "config": result["config"],
        "command": options.command,
    }
    path = cell_path(cell, options.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, path)
    return path


def run_grid(cells: Sequence[Cell], options: RunOptions, *, isolate: bool) -> int:
    """Run the cells not done yet, each in a child process if ``isolate``;
    returns the number that failed."""
    pending = [cell for cell in cells if not is_done(cell, options.results)]
    for cell in cells:
        if cell not in pending:
            log.info("skip %s: done", cell.name)
    for cell in pending:  # every drop variant checked before anything trains
        experiment_config(cell, replace(options, progress=False))
    failed = []
    for index, cell in enumerate(pending, 1):
        log.info("cell %d/%d: %s", index, len(pending), cell.name)
        if isolate:
            payload = json.dumps({"cell": cell.key(), "options": asdict(options)})
            child = [sys.executable, "-m", MODULE, "--run-cell", payload]
            child += ["-v"] if options.verbose else []
            ok = subprocess.run(child).returncode == 0
        else:
            try:
                run_cell(cell, options)
                ok = True
            except Exception:
                log.exception("%s failed", cell.name)
                ok = False
        if ok:
            log.info("%s: written %s", cell.name, cell_path(cell, options.results))
        else:
            failed.append(cell.name)
    if failed:
        log.error("%d cell(s) failed: %s", len(failed), ", ".join(failed))
    return len(failed)


def main(argv: Sequence[str] | None = None) -> int:
    """A cell's child process: ``python -m almea_pyg.pipeline.grid --run-cell
    '{"cell": <Cell.key()>, "options": <RunOptions fields>}'``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description="Run one cell of a grid."
    )
    parser.add_argument("--run-cell", required=True, metavar="JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="library logs")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)
    payload = json.loads(args.run_cell)
    try:
        run_cell(Cell(**payload["cell"]), RunOptions(**payload["options"]))
    except (ValueError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
