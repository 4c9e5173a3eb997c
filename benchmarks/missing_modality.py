"""Missing modalities, controlled: remove one, fill it, score what it hit.

A cell is one :func:`almea_pyg.pipeline.experiment.run_experiment` of ALMEA
(w/o ACS) on a dataset whose modality ``m`` was removed from a share ``p`` of each
KG's entities (seeded by the run's seed, after the split: ``drop_modality``,
``drop_fraction``), with one way of giving the model the rows removed:

- ``zero``: left missing (zero rows, masked out): the paper's default;
- ``mean``: the KG's mean observed row (``fill="mean"``);
- ``propagate``: feature propagation over the relation graph
  (``fill="propagate"``);
- ``lsl``: left missing and imputed by LSL's decoders at inference
  (``impute_missing=True``);
- ``linear``: left missing and imputed at inference by a ridge regression on
  the entity's other modalities, fitted on the trained model's embeddings
  (``imputer="linear"``, :class:`~almea_pyg.nn.LinearImputer`);
- ``lsl_kl``: LSL with its KL term per latent dimension rather than summed over
  them (``lambda_dml = 1 / dim``, as ``L_URL`` is a mean over dimensions), and
  imputing: a model trained differently, so a cell of its own.

Every cell writes one JSON (its protocol, its metrics, the Hits@k and MRR of the
test links whose source or target lost ``m`` and of the rest, the R² of the fill
and of the model's imputer on the removed rows) into ``--results``, and its run
folder under ``--work-dir``. Done cells are skipped, an interrupted one resumes
from its checkpoint. The imputers of ``lsl`` and ``linear`` change inference
only, so such a cell whose ``zero`` cell is done evaluates that cell's final
checkpoint instead of training the same model again (the same result, exactly).

    python benchmarks/missing_modality.py --datasets synthetic --modalities img \\
        --fractions 0.4 --seeds 0 1 2 --threads 1
    python benchmarks/missing_modality.py --datasets FB15K_DB15K --modalities attr \\
        --fractions 0.4 --seeds 0 1 2 --data-dir ../shared/data/mmkg
    python benchmarks/missing_modality.py --summarise

``--summarise`` writes ``summary.md`` and ``summary.json`` into ``--results``: per
dataset, modality, fraction and epochs, mean ± sample std over seeds of each
method (CSLS, left to right, %), and paired t-tests of each method against
``zero`` on the affected links.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from almea_pyg.io import atomic_write_text
from almea_pyg.pipeline.experiment import (
    DEFAULT_DIM,
    ExperimentConfig,
    run_experiment,
    write_json,
)
from almea_pyg.pipeline.run_folder import CHECKPOINT_FILE
from almea_pyg.pipeline.stats import format_mean_std as fmt
from almea_pyg.pipeline.stats import format_paired_t_test, mean_std, paired_t_test
from almea_pyg.train.memory import limit_heap_fragmentation

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "missing_modality"
WORK_DIR = ROOT / "runs" / "missing_modality"

#: Method -> (fill before training, model settings). ``lambda_dml`` ``None``:
#: one over the embedding size (the KL term per latent dimension).
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "zero": ("zero", {"impute_missing": False}),
    "mean": ("mean", {"impute_missing": False}),
    "propagate": ("propagate", {"impute_missing": False}),
    "lsl": ("zero", {"impute_missing": True}),
    "linear": ("zero", {"impute_missing": True, "imputer": "linear"}),
    "lsl_kl": ("zero", {"impute_missing": True, "lambda_dml": None}),
}
REFERENCE = "zero"
#: Methods whose model trains as the ``zero`` cell's does (inference differs).
INFERENCE_ONLY = ("lsl", "linear")
#: The summary's columns: (part, metric) of ``missing_modality``, CSLS.
COLUMNS = (
    ("affected", "mrr"),
    ("affected", "hits@1"),
    ("rest", "mrr"),
    ("rest", "hits@1"),
)
#: The links by the modality's presence on their two sides (``by_presence``).
PRESENCE = ("one_side_lacks", "both_lack", "both_have")

log = logging.getLogger("missing_modality")


@dataclass(frozen=True)
class Cell:
    """One run of the grid; its fields are the key stored in the cell's JSON."""

    dataset: str
    modality: str
    fraction: float
    method: str
    seed: int
    epochs: int

    @property
    def name(self) -> str:
        return (
            f"{self.dataset}-{self.modality}-p{self.fraction:g}-{self.method}"
            f"-e{self.epochs}-s{self.seed}"
        )

    def sibling(self, method: str) -> Cell:
        return Cell(**{**asdict(self), "method": method})


def grid_cells(args: argparse.Namespace) -> list[Cell]:
    """The cells of the grid, each ``zero`` cell before its ``lsl`` cell."""
    methods = [m for m in METHODS if m in args.methods]
    return [
        Cell(dataset, modality, fraction, method, seed, epochs(args, dataset))
        for dataset in args.datasets
        for modality in args.modalities
        for fraction in args.fractions
        for seed in args.seeds
        for method in methods
    ]


def epochs(args: argparse.Namespace, dataset: str) -> int:
    """``--epochs``, else the paper's schedule for ``dataset``."""
    return ExperimentConfig(dataset=dataset, epochs=args.epochs).resolved_epochs()


def cell_config(cell: Cell, args: argparse.Namespace) -> ExperimentConfig:
    fill, settings = METHODS[cell.method]
    model = {"dim": args.dim, **settings}
    if "lambda_dml" in model:
        model["lambda_dml"] = 1 / args.dim
    return ExperimentConfig(
        dataset=cell.dataset,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        seed=cell.seed,
        epochs=cell.epochs,
        device=args.device,
        output=str(args.work_dir / cell.name),
        model=model,
        progress=False,
        drop_modality=cell.modality,
        drop_fraction=cell.fraction,
        fill=fill,
    )


def cell_path(cell: Cell, results: Path) -> Path:
    return results / f"{cell.name}.json"


def run_cell(cell: Cell, args: argparse.Namespace) -> Path:
    """Run ``cell`` (resuming its folder's checkpoint; an :data:`INFERENCE_ONLY`
    cell from its done ``zero`` cell's final checkpoint) and write its JSON."""
    config = cell_config(cell, args)
    folder = Path(config.output)
    zero = cell.sibling(REFERENCE)
    warm_start = None
    if folder.joinpath(CHECKPOINT_FILE).exists():
        result = run_experiment(config, resume=True)
    else:
        if cell.method in INFERENCE_ONLY and cell_path(zero, args.results).exists():
            warm_start = args.work_dir / zero.name / CHECKPOINT_FILE
        result = run_experiment(config, overwrite=True, warm_start=warm_start)
    record = {
        "cell": asdict(cell),
        "warm_start": zero.name if warm_start is not None else None,
        **{
            k: result[k]
            for k in ("protocol", "metrics", "imputer_fit", "missing_modality")
        },
        "latent_diagnostics": result["latent_diagnostics"],
        "timing": result["timing"],
        "config": result["config"],
    }
    path = cell_path(cell, args.results)
    write_json(record, path)
    return path


def run_grid(cells: Sequence[Cell], args: argparse.Namespace) -> int:
    """Run the cells not done yet; the number run."""
    args.results.mkdir(parents=True, exist_ok=True)
    todo = [cell for cell in cells if not cell_path(cell, args.results).exists()]
    log.info("%d cells, %d to run", len(cells), len(todo))
    for cell in todo:
        log.info("running %s", cell.name)
        run_cell(cell, args)
    return len(todo)


def load_records(results: Path) -> list[dict[str, Any]]:
    """The cell records in ``results`` (not the summary)."""
    records = []
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text())
        if "cell" in record:
            records.append(record)
    return records


def _values(record: dict[str, Any]) -> dict[str, float | None]:
    missing = record["missing_modality"]
    values: dict[str, float | None] = {
        f"{part}_{metric}": missing[part]["csls"][metric] for part, metric in COLUMNS
    }
    values["all_mrr"] = record["metrics"]["csls"]["mrr"]
    values["affected_links"] = missing["links"]["affected"]
    values["fill_r2"] = missing["fill_r2"]
    values["imputation_r2"] = missing["imputation_r2"]
    fit = (record.get("imputer_fit") or {}).get(record["cell"]["modality"])
    values["heldout_r2"] = None if fit is None else fit["heldout_r2"]
    presence = missing.get("by_presence")
    for part in PRESENCE:
        values[f"{part}_links"] = presence["links"][part] if presence else None
        values[f"{part}_mrr"] = presence[part]["csls"]["mrr"] if presence else None
    return values


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting (dataset, modality, fraction, epochs): mean ± std over seeds
    of each method's values, and paired tests against ``zero`` on the affected
    links (over the seeds both have)."""
    settings: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for record in records:
        cell = record["cell"]
        key = (cell["dataset"], cell["modality"], cell["fraction"], cell["epochs"])
        settings[key][cell["method"]][cell["seed"]] = _values(record)
    out = []
    for key, methods in sorted(settings.items()):
        rows = {}
        for method in [m for m in METHODS if m in methods]:
            seeds = methods[method]
            row: dict[str, Any] = {"seeds": sorted(seeds)}
            for name in next(iter(seeds.values())):
                values = [v[name] for v in seeds.values()]
                row[name] = (
                    mean_std(values) if all(v is not None for v in values) else None
                )
            rows[method] = row
        tests = []
        reference = methods.get(REFERENCE, {})
        for method, seeds in methods.items():
            common = sorted(set(seeds) & set(reference))
            if method == REFERENCE or len(common) < 2:
                continue
            test: dict[str, Any] = {"method": method, "seeds": common}
            for name in ("affected_mrr", "affected_hits@1"):
                test[name] = paired_t_test(
                    [seeds[s][name] for s in common],
                    [reference[s][name] for s in common],
                )
            tests.append(test)
        setting = dict(zip(("dataset", "modality", "fraction", "epochs"), key))
        out.append({"setting": setting, "methods": rows, "paired_vs_zero": tests})
    return out


def format_markdown(summary: list[dict[str, Any]]) -> str:
    lines = []
    for block in summary:
        s = block["setting"]
        lines += [
            f"### {s['dataset']}: {s['modality']} removed from {s['fraction']:.0%} "
            f"of the entities, {s['epochs']} epochs",
            "",
            "| method | seeds | affected links | affected MRR | affected Hits@1 "
            "| rest MRR | rest Hits@1 | all MRR | fill R² (features) "
            "| imputer R² (h^m) | linear fit held-out R² |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method, row in block["methods"].items():
            cells = [fmt(row[f"{part}_{metric}"]) for part, metric in COLUMNS]
            lines.append(
                f"| {method} | {len(row['seeds'])} "
                f"| {fmt(row['affected_links'], 0)} | " + " | ".join(cells) + " "
                f"| {fmt(row['all_mrr'])} | {fmt(row['fill_r2'], 3)} "
                f"| {fmt(row['imputation_r2'], 3)} | {fmt(row['heldout_r2'], 3)} |"
            )
        lines.append("")
        by_presence = {
            method: row
            for method, row in block["methods"].items()
            if row["one_side_lacks_mrr"] is not None
        }
        if by_presence:
            lines += [
                f"MRR by whether a link's entities lack {s['modality']} (lost or "
                "missing in the data; links in brackets):",
                "",
                "| method | one side lacks it | both lack it | both have it |",
                "| --- | --- | --- | --- |",
            ]
            for method, row in by_presence.items():
                cells = [
                    f"{fmt(row[f'{part}_mrr'])} ({fmt(row[f'{part}_links'], 0)})"
                    for part in PRESENCE
                ]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            lines.append("")
        if block["paired_vs_zero"]:
            lines += [
                "Paired differences against zero-fill on the affected links "
                "(mean, 95 % interval, t, p):",
                "",
                "| method | n | ΔMRR | 95 % CI | t | p | ΔHits@1 | 95 % CI | t | p |",
                "|" + " --- |" * 10,
            ]
            for test in block["paired_vs_zero"]:
                cells = []
                for name in ("affected_mrr", "affected_hits@1"):
                    cells += format_paired_t_test(test[name])
                lines.append(
                    f"| {test['method']} | {len(test['seeds'])} | "
                    + " | ".join(cells)
                    + " |"
                )
            lines.append("")
    return "\n".join(lines)


def write_summary(results: Path) -> str:
    """Summarise the cells in ``results`` into ``summary.json`` and
    ``summary.md``; returns the markdown."""
    summary = summarise(load_records(results))
    markdown = format_markdown(summary)
    atomic_write_text(json.dumps(summary, indent=1), results / "summary.json")
    atomic_write_text(markdown, results / "summary.md")
    return markdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--datasets", nargs="+", default=["synthetic"])
    parser.add_argument(
        "--modalities", nargs="+", default=["attr"], help="e.g. attr rel img"
    )
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.2, 0.4, 0.6])
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--epochs", type=int, help="default: the paper's schedule per dataset"
    )
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument("--data-dir", help="local copy of the named datasets' files")
    parser.add_argument("--cache-dir", help="processed-pair cache")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument(
        "--summarise", action="store_true", help="summarise the cells, run none"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    if args.summarise:
        print(write_summary(args.results))
        return 0
    limit_heap_fragmentation()
    if args.threads:
        torch.set_num_threads(args.threads)
    run_grid(grid_cells(args), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
