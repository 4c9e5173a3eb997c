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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from almea_pyg.active.loop import ActiveLearner, ActiveLearningConfig
from almea_pyg.data.pair import MMKGPair
from almea_pyg.io import atomic_write_text
from almea_pyg.models import ALMEA
from almea_pyg.plot import save_run_plots
from almea_pyg.train.memory import limit_heap_fragmentation, peak_memory_mib
from almea_pyg.train.trainer import Trainer

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

#: Table 9 of the paper: masking rate and warm-up epochs per dataset.
PAPER_SCHEDULE = {
    "FB15K_DB15K": {"p_mask": 0.45, "epochs": 500},
    "FB15K_YAGO15K": {"p_mask": 0.50, "epochs": 300},
    "synthetic": {"p_mask": 0.45, "epochs": 100},
}


@dataclass
class ExperimentConfig:
    """Everything that defines a run; written into its result JSON."""

    dataset: str = "synthetic"
    data_dir: str | None = None
    cache_dir: str = "data"
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
    model: dict[str, Any] = field(default_factory=dict)
    active: ActiveLearningConfig | None = None
    progress: bool = True

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :func:`dataclasses.asdict` (as stored in ``result.json``)."""
        state = dict(state)
        if state.get("active") is not None:
            state["active"] = ActiveLearningConfig(**state["active"])
        return cls(**state)

    def resolved_epochs(self) -> int:
        if self.epochs is not None:
            return self.epochs
        return PAPER_SCHEDULE.get(self.dataset, PAPER_SCHEDULE["synthetic"])["epochs"]


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


def load_pair(
    dataset: str, *, data_dir: str | None = None, cache_dir: str = "data"
) -> MMKGPair:
    """The unsplit pair named ``dataset``: ``"synthetic"`` or a real mmkb pair."""
    if dataset == "synthetic":
        from almea_pyg.data.synthetic import make_synthetic_pair

        return make_synthetic_pair()
    if dataset in ("FB15K_DB15K", "FB15K_YAGO15K"):
        from almea_pyg.datasets import MMKB

        return MMKB(cache_dir, pair=dataset, raw_dir=data_dir).pair
    raise ValueError(
        f"unknown dataset {dataset!r}: synthetic, FB15K_DB15K or FB15K_YAGO15K"
    )


def prepare_pair(config: ExperimentConfig) -> MMKGPair:
    """The configuration's pair, split at its seed ratio and seed, on its device."""
    pair = load_pair(
        config.dataset, data_dir=config.data_dir, cache_dir=config.cache_dir
    )
    return pair.split(
        config.seed_ratio, seed=config.seed, pool_ratio=config.pool_ratio
    ).to(config.device)


def build_model(config: ExperimentConfig, pair: MMKGPair) -> ALMEA:
    """The configuration's model variant for ``pair`` (paper defaults per dataset)."""
    kwargs = {"p_mask": PAPER_SCHEDULE.get(config.dataset, {}).get("p_mask", 0.45)}
    kwargs.update(VARIANTS[config.variant])
    kwargs.update(config.model)
    return ALMEA.from_pair(pair, modalities=config.modalities, **kwargs).to(
        config.device
    )


def run_experiment(config: ExperimentConfig, *, resume: bool = False) -> dict[str, Any]:
    """Train and evaluate one configuration; write ``result.json`` into ``output``.

    With ``config.active`` (rounds > 0), the warm-up is ``epochs`` and active
    learning follows; ``resume`` continues from ``output/checkpoint.pt``. A run
    whose human oracle awaits labels returns with ``status: labels_pending``.
    Fixes glibc's mmap threshold for the process first
    (:func:`~almea_pyg.train.memory.limit_heap_fragmentation`).
    """
    if config.variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {config.variant!r}: one of {sorted(VARIANTS)}"
        )
    limit_heap_fragmentation()
    torch.manual_seed(config.seed)
    pair = prepare_pair(config)
    model = build_model(config, pair)
    log.info("%s\n%s", pair, model)
    trainer = Trainer(
        model,
        pair,
        lr=config.lr,
        batch_size=config.batch_size,
        max_grad_norm=config.max_grad_norm,
        eval_every=config.eval_every,
        metric=config.metric,
        output_dir=config.output,
        seed=config.seed,
        progress=config.progress,
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
    checkpoint = Path(config.output) / "checkpoint.pt" if config.output else None
    if active is not None:
        active.warmup = epochs
        learner = ActiveLearner(
            trainer, active, output_dir=config.output, seed=config.seed
        )
    if resume:
        if checkpoint is None or not checkpoint.exists():
            raise FileNotFoundError(f"nothing to resume: {checkpoint} not found")
        (learner or trainer).load_checkpoint(checkpoint)
    start = time.perf_counter()
    if learner is not None:
        learner.run()
    else:
        trainer.fit(epochs - trainer.epoch)
    train_seconds = time.perf_counter() - start
    status = learner.status if learner is not None else "done"
    metrics = {metric: trainer.evaluate(metric=metric) for metric in ("cosine", "csls")}
    if model.lsl is not None:
        # The other imputation setting, to keep measuring which default is right.
        model.impute_missing = not model.impute_missing
        metrics[f"csls_impute_{model.impute_missing}".lower()] = trainer.evaluate()
        model.impute_missing = not model.impute_missing
    latent = model.latent_diagnostics(pair) if model.lsl is not None else None
    epoch_seconds = [row["seconds"] for row in trainer.history]
    result = {
        "status": status,
        "protocol": {
            "dataset": config.dataset,
            "data": DATA_NOTES.get(config.dataset, config.dataset),
            "seed_ratio": config.seed_ratio,
            "seed": config.seed,
            "epochs": trainer.epoch,
            "warmup_epochs": epochs,
            "variant": config.variant,
            "modalities": model.modalities,
            "impute_missing": model.impute_missing if model.lsl is not None else None,
            "active_learning": active is not None,
            "strategy": active.strategy if active else None,
            "oracle": active.oracle if active else None,
            "rounds": active.rounds if active else 0,
            "budget_per_round": (
                active.budget_count(pair.links.size(1)) if active else 0
            ),
            "test_links_in_pool": bool(active and active.transductive),
            "test_links_removed": learner.test_links_removed if learner else 0,
            "train_links": pair.train_links.size(1),
            "test_links": pair.test_links.size(1),
            "pool_ratio": config.pool_ratio,
            "pool_links": pool_links,
            "max_grad_norm": config.max_grad_norm,
        },
        "metrics": metrics,
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
    }
    if config.output is not None:
        out = Path(config.output)
        out.mkdir(parents=True, exist_ok=True)
        (learner or trainer).save_checkpoint(checkpoint)
        write_labelled_links(trainer, out / "labelled_links.tsv")
        selection = None
        if learner is not None and learner.last_asked.numel():
            emb_s, emb_t = model.embed(pair)
            selection = (emb_s, emb_t, trainer.train_links, learner.last_asked)
        rounds = learner.rounds if learner is not None else []
        save_run_plots(out, trainer.history, rounds, selection)
        write_json(result, out / "result.json")
    return result


def write_labelled_links(trainer: Trainer, path: str | os.PathLike) -> None:
    """The seed links (initial and learned), by original identifiers, as TSV."""
    from almea_pyg.active.labels import entity_ids

    src, tgt = entity_ids(trainer.pair.source), entity_ids(trainer.pair.target)
    lines = [f"{src[s]}\t{tgt[t]}" for s, t in trainer.train_links.t().tolist()]
    atomic_write_text("\n".join(lines) + "\n", path)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    atomic_write_text(json.dumps(obj, indent=2, default=str), path)
