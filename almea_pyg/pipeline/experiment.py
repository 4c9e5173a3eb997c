"""One reproducible training run: load a pair, split, train, evaluate, report.

Shared by the CLI (``almea-pyg train``) and the examples, so every run writes the
same result JSON with its protocol.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from almea_pyg.active.loop import ActiveLearner, ActiveLearningConfig
from almea_pyg.data.pair import MMKGPair
from almea_pyg.data.readers import detect_layout, read_pair
from almea_pyg.datasets import DBP15K, MMKB, OpenEA
from almea_pyg.datasets.openea import PAIRS as OPENEA
from almea_pyg.io import atomic_write_text
from almea_pyg.metrics.knn import FaissSearch, resolve_search
from almea_pyg.metrics.ranking import evaluate_directions
from almea_pyg.models import ALMEA, PairInputs, latent_diagnostics
from almea_pyg.pipeline.config_file import read_config_file
from almea_pyg.pipeline.missing_modality import (
    evaluate_missing,
    missing_transform,
    removal,
)
from almea_pyg.pipeline.run_folder import (
    CHECKPOINT_FILE,
    RUN_FILE,
    check_resumable,
    prepare_folder,
    read_run_file,
    run_identity,
    write_run_file,
)
from almea_pyg.plot import save_run_plots
from almea_pyg.train.memory import peak_memory_mib
from almea_pyg.train.trainer import (
    Trainer,
    TrainingDivergedError,
    load_checkpoint_state,
)
from almea_pyg.typing import SimilarityMetric

log = logging.getLogger(__name__)

#: What differs from the paper's data, stated in every result on the real pairs.
DATA_NOTES = {
    "synthetic": "embedded synthetic MMKG pair (almea_pyg.data.synthetic)",
    "FB15K_DB15K": (
        "mmkb files; FB15K relation triples partial (381k of 592k); "
        "no image features (visual modality absent)"
    ),
    "FB15K_YAGO15K": (
        "mmkb files; FB15K relation triples partial (381k of 592k); "
        "no image features (visual modality absent)"
    ),
}

_DBP15K_NOTE = (
    "GCN-Align's DBP15K files: structure only (relation modality); no attributes, "
    "no images"
)
DATA_NOTES.update({f"DBP15K_{pair}": _DBP15K_NOTE for pair in DBP15K.PAIRS})
DATA_NOTES.update(
    {f"OpenEA_{pair}": "OpenEA v2.0 files (relations, attributes)" for pair in OPENEA}
)
#: The datasets known by name; any other pair is read from its directory
#: (``ExperimentConfig.data``).
DATASETS: tuple[str, ...] = tuple(DATA_NOTES)

#: Table 9 of the paper: the embedding size (the CLI's and the grid's default).
DEFAULT_DIM = 300

#: Table 9 of the paper: masking rate and warm-up epochs per dataset.
PAPER_SCHEDULE = {
    "FB15K_DB15K": {"p_mask": 0.45, "epochs": 500},
    "FB15K_YAGO15K": {"p_mask": 0.50, "epochs": 300},
    "synthetic": {"p_mask": 0.45, "epochs": 100},
}


@dataclass
class ExperimentConfig:
    """Everything that defines a run; written into its result JSON.

    ``drop_modality`` and ``drop_fraction`` remove a modality from that share of
    each KG's entities (seeded by ``seed``), and ``fill`` (``"zero"``,
    ``"mean"`` or ``"propagate"``) fills the rows entities lack before training
    (:mod:`~almea_pyg.pipeline.missing_modality`); LSL's imputation at
    inference is ``model["impute_missing"]``. ``fanouts`` switches to mini-batch
    training: each step's GAT runs on the batch's sampled neighbourhood, that
    many neighbours per node at each hop (:class:`~almea_pyg.train.Trainer`);
    ``None``, the default, runs it on the whole graph; ``full_forward`` then takes
    the forward values from the whole graph (a pass every ``full_forward_every``
    steps) and only the gradients from the sample. ``search`` (``"exact"`` or
    ``"faiss"``, built with ``search_kwargs``) is the search of the final test
    evaluation (:class:`~almea_pyg.metrics.FaissSearch`); the evaluations during
    training stay exact.
    """

    dataset: str = "synthetic"
    data: str | None = None
    data_dir: str | None = None
    cache_dir: str | None = None
    seed_ratio: float = 0.2
    pool_ratio: float = 0.0
    seed: int = 0
    epochs: int | None = None
    eval_every: int = 0
    device: str = "cpu"
    output: str | None = None
    variant: str = "almea"
    modalities: list[str] | None = None
    metric: str = "csls"
    lr: float = 1e-3
    batch_size: int = 3500
    max_grad_norm: float | None = None
    fanouts: list[int] | None = None
    full_forward: bool = False
    full_forward_every: int = 1
    optimizer: str = "paper"
    checkpoint_every: int = 25
    model: dict[str, Any] = field(default_factory=dict)
    active: ActiveLearningConfig | None = None
    progress: bool = True
    drop_modality: str | None = None
    drop_fraction: float = 0.0
    fill: str = "zero"
    search: str = "exact"
    search_kwargs: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ExperimentConfig:
        """Inverse of :func:`dataclasses.asdict` (as stored in ``result.json``):
        ``active`` a table of :class:`ActiveLearningConfig` fields. A pair read
        from ``data`` is named after its folder unless ``dataset`` names it.
        Unknown keys are refused with the valid ones."""
        state = dict(state)
        _check_keys(state, cls, "")
        for table in ("model", "active"):
            if not isinstance(state.get(table) or {}, Mapping):
                raise ValueError(f"{table}: a table of settings, not {state[table]!r}")
        if state.get("active") is not None:
            _check_keys(state["active"], ActiveLearningConfig, "active ")
            state["active"] = ActiveLearningConfig(**state["active"])
        if state.get("data") is not None and "dataset" not in state:
            state["dataset"] = Path(state["data"]).name
        return cls(**state)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> ExperimentConfig:
        """The config in a ``.json``, ``.toml`` or ``.yaml`` file
        (:func:`~almea_pyg.pipeline.config_file.read_config_file`), read as
        :meth:`from_dict` reads a table."""
        state = read_config_file(path)
        try:
            return cls.from_dict(state)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from error

    def optimizer_settings(self) -> dict[str, float | None]:
        """Weight decay and gradient clipping of :attr:`optimizer`; an explicit
        ``max_grad_norm`` replaces the setting's."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}: one of {sorted(OPTIMIZERS)}"
            )
        settings = dict(OPTIMIZERS[self.optimizer])
        if self.max_grad_norm is not None:
            settings["max_grad_norm"] = self.max_grad_norm
        return settings

    def resolved_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return PAPER_SCHEDULE.get(self.dataset, PAPER_SCHEDULE["synthetic"])["epochs"]


def _check_keys(state: Mapping[str, Any], kind: type, table: str) -> None:
    valid = [f.name for f in fields(kind)]
    unknown = sorted(set(state) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown {table}key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}: valid ones are {', '.join(valid)}"
        )


#: Named optimiser settings. ``"paper"``: Adam as the paper's text states (Table 9).
#: ``"code"``: what the paper's public code runs (RTX4090123/ALMEA ``main.py``,
#: ``config.py``): Adam with an L2 weight decay of 1e-4 and the gradients' global
#: norm clipped at 1.0 (SPEC section 4).
OPTIMIZERS: dict[str, dict[str, float | None]] = {
    "paper": {"weight_decay": 0.0, "max_grad_norm": None},
    "code": {"weight_decay": 1e-4, "max_grad_norm": 1.0},
}

#: Named model variants: ALMEA w/o ACS, the base model and the Table 2 ablations.
VARIANTS: dict[str, dict[str, Any]] = {
    "almea": {},
    "base": {"use_lsl": False},
    "no_lsc": {"use_lsc": False},
    "no_scl": {"lambda_scl": 0.0},
    "no_dml": {"lambda_dml": 0.0},
    "no_url": {"lambda_url": 0.0},
    "no_jal": {"lambda_jal": 0.0},
}


def default_cache_dir() -> Path:
    """Where processed pairs are cached: ``$XDG_CACHE_HOME/almea_pyg``, else
    ``~/.cache/almea_pyg`` (one place per user, not per working directory)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "almea_pyg"


def load_pair(
    dataset: str, *, data_dir: str | None = None, cache_dir: str | None = None
) -> MMKGPair:
    """The unsplit pair named ``dataset`` (one of :data:`DATASETS`): the synthetic
    pair, or a benchmark read from ``data_dir`` (or downloaded) and processed
    once into ``cache_dir`` (default :func:`default_cache_dir`)."""
    if dataset == "synthetic":
        from almea_pyg.data.synthetic import make_synthetic_pair

        return make_synthetic_pair()
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")
    root = str(cache_dir if cache_dir is not None else default_cache_dir())
    family, _, name = dataset.partition("_")
    if family == "DBP15K":
        return DBP15K(root, pair=name, raw_dir=data_dir).pair
    if family == "OpenEA":
        return OpenEA(root, pair=name, raw_dir=data_dir).pair
    return MMKB(root, pair=dataset, raw_dir=data_dir).pair


def split_pair(config: ExperimentConfig) -> MMKGPair:
    """The configuration's pair, split at its seed ratio and seed, on its device:
    read from the directory ``config.data`` in any supported layout
    (:func:`~almea_pyg.data.readers.read_pair`), else the dataset named
    ``config.dataset``; no modality removed or filled."""
    if config.data is not None:
        pair = read_pair(config.data)
    else:
        pair = load_pair(
            config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir
        )
    return pair.split(
        config.seed_ratio, seed=config.seed, pool_ratio=config.pool_ratio
    ).to(config.device)


def prepare_pair(config: ExperimentConfig) -> MMKGPair:
    """The pair a run trains on: :func:`split_pair` with the configuration's
    modality removed and missing rows filled
    (:func:`~almea_pyg.pipeline.missing_modality.missing_transform`)."""
    return missing_transform(config)(split_pair(config))


def build_model(config: ExperimentConfig, pair: MMKGPair) -> ALMEA:
    """The configuration's model variant for ``pair`` (paper defaults per dataset)."""
    kwargs = {"p_mask": PAPER_SCHEDULE.get(config.dataset, {}).get("p_mask", 0.45)}
    kwargs.update(VARIANTS[config.variant])
    kwargs.update(config.model)
    return ALMEA.from_pair(pair, modalities=config.modalities, **kwargs).to(
        config.device
    )


def check_device(device: str) -> torch.device:
    """``device`` as a :class:`torch.device`, refused when this machine lacks it."""
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r}: {error}") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r}: CUDA is not available here (torch "
            f"{torch.__version__}, {torch.cuda.device_count()} GPU); use --device cpu"
        )
    return resolved


def run_experiment(
    config: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    warm_start: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train and evaluate one configuration; write ``result.json`` into ``output``.

    With ``config.active`` (rounds > 0), the warm-up is ``epochs`` and active
    learning follows. The output folder records the run (``run.json``: config,
    fingerprints of config and data, status; see
    :mod:`~almea_pyg.pipeline.run_folder`) and is checkpointed every
    ``checkpoint_every`` epochs of the warm-up and after each round. A folder
    holding another run is refused unless ``overwrite``; ``resume`` continues
    from ``output/checkpoint.pt`` and refuses a checkpoint of other data or
    another configuration. ``warm_start`` starts from another run's checkpoint
    (same model; its epochs count as this run's). A run whose human oracle awaits
    labels returns with ``status: labels_pending``; a diverged run raises
    :class:`~almea_pyg.train.trainer.TrainingDivergedError` and its folder says
    ``diverged``. The run seeds torch's random generators with ``config.seed``
    inside :func:`torch.random.fork_rng`: the caller's random state is the same
    afterwards.
    """
    device = check_device(config.device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return _run_experiment(
            config, resume=resume, overwrite=overwrite, warm_start=warm_start
        )


def _run_experiment(
    config: ExperimentConfig,
    *,
    resume: bool,
    overwrite: bool,
    warm_start: str | os.PathLike | None,
) -> dict[str, Any]:
    if config.variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {config.variant!r}: one of {sorted(VARIANTS)}"
        )
    if config.epochs is not None and config.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {config.epochs}")
    optimizer = config.optimizer_settings()
    search = resolve_search(config.search, config.search_kwargs)  # fail early
    out = Path(config.output) if config.output else None
    checkpoint = out / CHECKPOINT_FILE if out is not None else None
    if resume and (checkpoint is None or not checkpoint.exists()):
        raise FileNotFoundError(f"nothing to resume: {checkpoint} not found")
    torch.manual_seed(config.seed)
    original = split_pair(config)
    pair = missing_transform(config)(original)
    model = build_model(config, pair)
    log.info("%s\n%s", pair, model)
    trainer = Trainer(
        model,
        pair,
        lr=config.lr,
        weight_decay=optimizer["weight_decay"],
        batch_size=config.batch_size,
        max_grad_norm=optimizer["max_grad_norm"],
        eval_every=config.eval_every,
        metric=config.metric,
        output_dir=None,
        seed=config.seed,
        progress=config.progress,
        fanouts=config.fanouts,
        full_forward=config.full_forward,
        full_forward_every=config.full_forward_every,
    )
    epochs = config.resolved_epochs()
    # Links in no split: only an oracle can reveal them (before any is learned).
    pool_links = pair.links.size(1) - sum(
        links.size(1) for links in (pair.train_links, pair.valid_links, pair.test_links)
    )
    active = (
        config.active if config.active is not None and config.active.rounds else None
    )
    learner = None
    if active is not None:
        active.warmup = epochs
        learner = ActiveLearner(
            trainer, active, output_dir=config.output, seed=config.seed
        )
    runner = learner or trainer
    config_dict = asdict(config)
    identity = run_identity(config_dict, pair)
    if out is not None:
        if resume:
            state = load_checkpoint_state(checkpoint)
            check_resumable(out, state, identity)
            runner.load_state_dict(state)
            write_run_file(out, config_dict, identity, status="running")
        else:
            prepare_folder(out, config_dict, identity, overwrite=overwrite)
            if warm_start is not None:
                runner.load_state_dict(load_checkpoint_state(warm_start))
        trainer.output_dir = out
        trainer.rewrite_log()
    trainer.metadata = {"config": config_dict, "fingerprint": identity}

    def checkpoint_now(trainer: Trainer) -> None:
        if config.checkpoint_every and trainer.epoch % config.checkpoint_every == 0:
            runner.save_checkpoint(checkpoint)

    callback = checkpoint_now if out is not None else None
    start = time.perf_counter()
    try:
        if learner is not None:
            learner.run(callback=callback)
        else:
            trainer.fit(epochs - trainer.epoch, callback=callback)
    except TrainingDivergedError:
        if out is not None:
            write_run_file(out, config_dict, identity, status="diverged")
        raise
    train_seconds = time.perf_counter() - start
    status = learner.status if learner is not None else "done"
    metrics = evaluate_test_links(
        model, trainer.inputs, links=trainer.test_links, search=search or "exact"
    )
    imputer_fit = (
        model.linear_imputer.summary()
        if model.linear_imputer is not None and model.impute_missing
        else None
    )
    if model.can_impute:
        # The other imputation setting, to keep measuring which default is right.
        model.impute_missing = not model.impute_missing
        metrics[f"csls_impute_{model.impute_missing}".lower()] = trainer.evaluate()
        model.impute_missing = not model.impute_missing
    latent = (
        latent_diagnostics(model, trainer.inputs) if model.lsl is not None else None
    )
    drop = removal(config)
    missing = (
        evaluate_missing(model, original, pair, trainer.test_links, drop)
        if drop is not None
        else None
    )
    imputes = model.can_impute and model.impute_missing
    epoch_seconds = [row["seconds"] for row in trainer.history]
    result = {
        "status": status,
        "protocol": {
            "dataset": config.dataset,
            "data": (
                f"{detect_layout(config.data)} layout read from {config.data}"
                if config.data is not None
                else DATA_NOTES.get(config.dataset, config.dataset)
            ),
            "seed_ratio": config.seed_ratio,
            "seed": config.seed,
            "epochs": trainer.epoch,
            "warmup_epochs": epochs,
            "variant": config.variant,
            "modalities": model.modalities,
            "impute_missing": model.impute_missing if model.can_impute else None,
            "removed_modality": config.drop_modality,
            "removed_fraction": config.drop_fraction,
            "fill": config.fill,
            "imputer": model.imputer if imputes else None,
            "active_learning": active is not None,
            "strategy": active.strategy if active else None,
            "oracle": active.oracle if active else None,
            "question": active.question if active else None,
            "rounds": active.rounds if active else 0,
            "budget_per_round": (
                active.budget_count(pair.links.size(1)) if active else 0
            ),
            "test_links_in_pool": bool(active and active.transductive),
            "round_lr_decay": active.lr_decay if active else None,
            "round_rewarmup": active.rewarmup if active else None,
            "test_links_removed": learner.test_links_removed if learner else 0,
            "train_links": pair.train_links.size(1),
            "test_links": trainer.test_links.size(1),
            "pool_ratio": config.pool_ratio,
            "pool_links": pool_links,
            "optimizer": config.optimizer,
            "weight_decay": optimizer["weight_decay"],
            "max_grad_norm": optimizer["max_grad_norm"],
            "fanouts": config.fanouts,
            "full_forward": config.full_forward,
            "full_forward_every": config.full_forward_every,
        },
        "metrics": metrics,
        "imputer_fit": imputer_fit,
        "rounds": learner.rounds if learner is not None else [],
        "timing": {
            "train_seconds": train_seconds,
            "seconds_per_epoch": (
                statistics.mean(epoch_seconds) if epoch_seconds else None
            ),
            "seconds_per_epoch_median": (
                statistics.median(epoch_seconds) if epoch_seconds else None
            ),
            "peak_memory_mib": peak_memory_mib(),
            "device": config.device,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "torch": torch.__version__,
        },
        "config": asdict(config),
        "latent_diagnostics": latent,
        "missing_modality": missing,
    }
    if out is not None:
        runner.save_checkpoint(checkpoint)
        write_labelled_links(trainer, out / "labelled_links.tsv")
        selection = None
        if learner is not None and learner.last_asked.numel():
            emb_s, emb_t = model.embed(trainer.inputs)
            selection = (emb_s, emb_t, trainer.train_links, learner.last_asked)
        rounds = learner.rounds if learner is not None else []
        save_run_plots(out, trainer.history, rounds, selection)
        write_json(result, out / "result.json")
        write_run_file(out, config_dict, identity, status=status)
    return result


def evaluate_test_links(
    model: ALMEA,
    pair: MMKGPair | PairInputs,
    metrics: Sequence[SimilarityMetric] = ("cosine", "csls"),
    *,
    links: Tensor | None = None,
    search: str | FaissSearch = "exact",
    search_kwargs: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each metric on the test links, left-to-right (``"cosine"``, ``"csls"``),
    right-to-left (``"<metric>_r2l"``) and their mean (``"<metric>_mean"``), at
    the model as it is (never an epoch picked on the test links). ``links``
    replaces ``pair.test_links`` (e.g. those left after active learning; needed
    with :class:`PairInputs`, built once by the trainer, which hold no links).
    ``search`` and ``search_kwargs`` choose exact scoring or faiss top-k lists
    (:func:`~almea_pyg.metrics.evaluate_alignment`; with faiss each direction
    states its search)."""
    links = pair.test_links if links is None else links
    search = resolve_search(search, search_kwargs) or "exact"
    with torch.no_grad():
        emb_s, emb_t = model.embed(pair)
    results = {}
    for metric in metrics:
        both = evaluate_directions(emb_s, emb_t, links, metric=metric, search=search)
        results[metric] = both["l2r"]
        results[f"{metric}_r2l"] = both["r2l"]
        results[f"{metric}_mean"] = both["mean"]
    return results


def write_labelled_links(trainer: Trainer, path: str | os.PathLike) -> None:
    """The seed links (initial and learned), by original identifiers, as TSV."""
    from almea_pyg.active.labels import entity_ids

    src, tgt = entity_ids(trainer.pair.source), entity_ids(trainer.pair.target)
    lines = [f"{src[s]}\t{tgt[t]}" for s, t in trainer.train_links.t().tolist()]
    atomic_write_text("\n".join(lines) + "\n", path)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    atomic_write_text(json.dumps(obj, indent=2, default=str), path)


def stored_config(run: Path) -> ExperimentConfig:
    """The configuration of the run in folder ``run``: from its ``run.json``,
    else its checkpoint, else its ``result.json`` (runs of earlier versions)."""
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder")
    record = read_run_file(run)
    if record is None and (run / CHECKPOINT_FILE).exists():
        state = load_checkpoint_state(run / CHECKPOINT_FILE)
        record = state.get("trainer", state).get("metadata") or None
    if record is None and (run / "result.json").exists():
        record = json.loads((run / "result.json").read_text())
    if record is None:
        raise FileNotFoundError(
            f"{run} holds no run (no {RUN_FILE}, checkpoint or result.json): is it "
            "a training --output?"
        )
    config = ExperimentConfig.from_dict(record["config"])
    config.output = str(run)
    return config


def restore_run(run: Path) -> tuple[ExperimentConfig, MMKGPair, dict]:
    """A run's configuration, its split pair and its checkpoint's state, checked
    to belong together (the data did not change since the run)."""
    config = stored_config(run)
    checkpoint = run / CHECKPOINT_FILE
    if not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint} not found")
    check_device(config.device)
    pair = prepare_pair(config)
    state = load_checkpoint_state(checkpoint)
    check_resumable(run, state, run_identity(asdict(config), pair))
    return config, pair, state


def restore_learner(
    run: Path, active: ActiveLearningConfig | None = None
) -> ActiveLearner:
    """A run's trainer and active learner as its checkpoint left them.

    ``active`` replaces the run's own active-learning settings (a run trained
    without active learning has none).
    """
    config, pair, state = restore_run(run)
    active = active or config.active
    if active is None:
        raise ValueError(f"{run} ran without active learning: give a strategy")
    trainer = Trainer(build_model(config, pair), pair, progress=False)
    learner = ActiveLearner(trainer, active, output_dir=run, seed=config.seed)
    learner.load_state_dict(state)
    return learner
