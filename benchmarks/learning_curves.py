"""Learning curves of active-learning cells: MRR and Hits@1 against questions asked.

Reads the cell JSONs that ``benchmarks/accuracy.py`` wrote (one per strategy and
seed, each with its per-round records) and writes, per setting (dataset, start
ratio, pool ratio, schedule):

- ``curves.json``: per strategy (its variant, with what it trained with beyond
  the paper's optimiser and constant learning rate, e.g. ``almea+passive clip1``)
  and round, the mean ± std over seeds of the
  questions asked so far, links gained, true answers the model already ranked
  first, DS3's pool and representatives, MRR and Hits@1; and per round the paired
  differences of every strategy against ``--reference`` (default: passive).
- ``curves.md``: the same as tables.
- a plot: MRR and Hits@1 against questions asked, one line per strategy, a band of
  ± one std over seeds; a strategy that asks nothing (``almea+none``) is a dotted
  line at its score after the last round.

    python benchmarks/learning_curves.py --results benchmarks/results/scarce \\
        --plot docs/scarce_curves.png

``--results`` takes several folders (the files go to the first); ``--variants``
keeps those strategies (and the reference) in the settings where all of them ran.

The round metrics are what the loop evaluated after each round: CSLS,
left-to-right, on the setting's test links (the same for every strategy of a
setting: test entities never enter the pool).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from almea_pyg.io import atomic_write_text
from almea_pyg.pipeline.grid import variant_label
from almea_pyg.pipeline.stats import format_mean_std as fmt
from almea_pyg.pipeline.stats import format_paired_t_test, mean_std, paired_t_test

METRICS = ("mrr", "hits@1")
SERIES = ("asked", "gained", "already_top1", "pool", "representatives")
SCHEDULE = ("seed_ratio", "pool_ratio", "rounds", "interval", "budget", "epochs")


def load_cells(*folders: Path) -> list[dict[str, Any]]:
    """The active-learning cell records in ``folders``."""
    records = []
    for path in sorted(p for folder in folders for p in folder.glob("*.json")):
        record = json.loads(path.read_text())
        if "cell" in record and record["cell"].get("rounds"):
            records.append(record)
    return records


def cumulative(rounds: list[dict[str, Any]], key: str) -> list[float]:
    total, out = 0.0, []
    for record in rounds:
        total += record.get(key) or 0
        out.append(total)
    return out


def curve(record: dict[str, Any]) -> dict[str, list[float | None]]:
    """One cell's per-round series (round 0: before the first question)."""
    rounds = record["rounds"]
    series: dict[str, list[float | None]] = {
        "asked": cumulative(rounds, "asked"),
        "gained": cumulative(rounds, "gained"),
        "already_top1": cumulative(rounds, "already_top1"),
        "pool": [r.get("selection", {}).get("pool") for r in rounds],
        "representatives": [
            r.get("selection", {}).get("representatives") for r in rounds
        ],
    }
    for metric in METRICS:
        series[metric] = [r[metric] for r in rounds]
    return series


def setting_key(cell: dict[str, Any]) -> tuple:
    return (cell["dataset"], *(cell.get(k, 0.0) for k in SCHEDULE))


def summarise(
    records: list[dict[str, Any]],
    reference: str,
    keep: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Per setting: mean ± std curves per strategy and paired tests per round.

    With ``keep``, only those strategies and the reference, in the settings where
    all of ``keep`` ran.
    """
    settings: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for record in records:
        cell = record["cell"]
        label = variant_label(cell)
        if keep is None or label in keep or label == reference:
            settings[setting_key(cell)][label][cell["seed"]] = curve(record)
    if keep is not None:
        settings = {
            key: variants
            for key, variants in settings.items()
            if set(keep) <= set(variants)
        }
    out = []
    for key, variants in sorted(settings.items()):
        setting = dict(zip(("dataset", *SCHEDULE), key))
        strategies = {}
        for variant, seeds in sorted(variants.items()):
            rows = []
            num_rounds = min(len(c["mrr"]) for c in seeds.values())
            for r in range(num_rounds):
                row: dict[str, Any] = {"round": r, "seeds": sorted(seeds)}
                for name in SERIES:
                    values = [c[name][r] for c in seeds.values()]
                    if all(v is not None for v in values):
                        row[name] = mean_std(values)
                for metric in METRICS:
                    row[metric] = mean_std([c[metric][r] for c in seeds.values()])
                rows.append(row)
            strategies[variant] = rows
        tests = []
        base = variants.get(reference, {})
        for variant, seeds in sorted(variants.items()):
            common = sorted(set(seeds) & set(base))
            if variant == reference or len(common) < 2:
                continue
            num_rounds = min(len(seeds[s]["mrr"]) for s in common)
            num_rounds = min(num_rounds, min(len(base[s]["mrr"]) for s in common))
            for r in range(1, num_rounds):
                test = {"variant": variant, "round": r, "seeds": common}
                for metric in METRICS:
                    xa = [seeds[s][metric][r] for s in common]
                    xb = [base[s][metric][r] for s in common]
                    test[metric] = paired_t_test(xa, xb)
                tests.append(test)
        out.append(
            {
                "setting": setting,
                "reference": reference,
                "strategies": strategies,
                "paired_vs_reference": tests,
            }
        )
    return out


def format_markdown(summary: list[dict[str, Any]]) -> str:
    lines = []
    for block in summary:
        s = block["setting"]
        lines.append(
            f"### {s['dataset']}: {s['seed_ratio']:g} seeds, pool {s['pool_ratio']:g}, "
            f"{s['epochs']} warm-up epochs, {s['rounds']} rounds of {s['budget']:g} "
            f"every {s['interval']} epochs"
        )
        lines.append("")
        lines.append(
            "| strategy | round | asked | gained | already top-1 | DS3 reps / pool "
            "| MRR | Hits@1 |"
        )
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for variant, rows in block["strategies"].items():
            for row in rows:
                reps = "-"
                if "representatives" in row:
                    reps = f"{fmt(row['representatives'], 0)} / {fmt(row['pool'], 0)}"
                lines.append(
                    f"| {variant} | {row['round']} | {fmt(row.get('asked'), 0)} "
                    f"| {fmt(row.get('gained'), 0)} "
                    f"| {fmt(row.get('already_top1'), 0)} "
                    f"| {reps} | {fmt(row['mrr'], 2)} | {fmt(row['hits@1'], 2)} |"
                )
        lines.append("")
        if block["paired_vs_reference"]:
            reference = block["reference"]
            lines.append(
                f"Paired differences against {reference} (mean, 95 % interval, t, p):"
            )
            lines.append("")
            lines.append(
                "| strategy | round | n | ΔMRR | 95 % CI | t | p "
                "| ΔHits@1 | 95 % CI | t | p |"
            )
            lines.append("|" + " --- |" * 11)
            for test in block["paired_vs_reference"]:
                cells = []
                for metric in METRICS:
                    cells += format_paired_t_test(test[metric])
                lines.append(
                    f"| {test['variant']} | {test['round']} | {len(test['seeds'])} | "
                    + " | ".join(cells)
                    + " |"
                )
            lines.append("")
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """MRR and Hits@1 against questions asked, per setting; a band of ± one std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(summary), 2, figsize=(11, 4 * len(summary)), squeeze=False
    )
    # one colour per strategy across every setting's row
    variants = sorted({v for block in summary for v in block["strategies"]})
    palette = [*plt.rcParams["axes.prop_cycle"].by_key()["color"], "black", "navy"]
    colors = {v: palette[i % len(palette)] for i, v in enumerate(variants)}
    for row, block in zip(axes, summary):
        s = block["setting"]
        for ax, metric in zip(row, METRICS):
            for variant, rows in block["strategies"].items():
                x = [r["asked"]["mean"] for r in rows]
                y = [r[metric]["mean"] for r in rows]
                std = [r[metric]["std"] or 0.0 for r in rows]
                if not any(x):  # asks nothing: its score after the last round
                    ax.axhline(y[-1], color="grey", linestyle=":", label=variant)
                    continue
                style = "--" if variant == "almea+passive" else "-"
                (line,) = ax.plot(
                    x, y, style, marker=".", color=colors[variant], label=variant
                )
                ax.fill_between(
                    x,
                    [a - b for a, b in zip(y, std)],
                    [a + b for a, b in zip(y, std)],
                    color=line.get_color(),
                    alpha=0.12,
                )
            ax.set_xlabel("questions asked")
            ax.set_ylabel(f"{metric} (%)")
            ax.set_title(
                f"{s['dataset']}, {s['seed_ratio']:g} seeds, pool {s['pool_ratio']:g}"
            )
            ax.grid(alpha=0.3)
        row[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results",
        type=Path,
        nargs="+",
        required=True,
        help="folders of cell JSONs; curves.json and curves.md go to the first",
    )
    parser.add_argument("--reference", default="almea+passive")
    parser.add_argument(
        "--variants",
        nargs="+",
        metavar="STRATEGY",
        help="only these strategies (labels as in curves.md) and the reference",
    )
    parser.add_argument("--plot", type=Path, help="write the curves' plot here")
    args = parser.parse_args(argv)
    records = load_cells(*args.results)
    summary = summarise(records, args.reference, args.variants)
    if not summary:
        parser.error(f"no active-learning cells to show in {args.results}")
    out = args.results[0]
    atomic_write_text(json.dumps(summary, indent=1), out / "curves.json")
    atomic_write_text(format_markdown(summary), out / "curves.md")
    if args.plot is not None:
        plot(summary, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
