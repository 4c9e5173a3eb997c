"""Statistics over seeds: mean ± sample std, paired t-tests, summary rows.

The t-test is computed here (Student's t distribution through the regularised
incomplete beta function), so summarising needs no scipy; it gives
:func:`scipy.stats.ttest_rel`'s two-sided ``t`` and ``p``, and the confidence
interval of the mean difference (``ttest_rel(...).confidence_interval()``).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from almea_pyg.pipeline.grid import Cell, variant_label
from almea_pyg.pipeline.variants import HARNESS_VARIANTS

log = logging.getLogger(__name__)

#: The metrics of a summary row, in the order its tables show them.
METRICS = ("hits@1", "hits@10", "mrr")

#: The schedule fields that keep active-learning settings apart in a comparison.
SCHEDULE_FIELDS = ("rounds", "interval", "budget", "alpha", "prune")


def mean_std(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (``ddof=1``; ``None`` for one value)."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
    }


def format_mean_std(stat: dict[str, float | None] | None, digits: int = 2) -> str:
    """``"mean ± std"`` of a :func:`mean_std` result; the mean alone for one value,
    ``"-"`` for none."""
    if stat is None:
        return "-"
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def paired_t_test(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95
) -> dict[str, Any]:
    """Paired two-sided t-test of ``a`` against ``b`` (at least two pairs).

    Returns ``t``, ``p`` (``None`` where undefined: the differences all equal, or
    ``t`` infinite), ``mean_diff``, the mean of ``a - b``, and ``ci``, its
    two-sided ``confidence`` interval ``[low, high]``: whether a difference is
    within a margin (e.g. "within 1 MRR") is read from ``ci``, not from ``p``.
    """
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(
            f"a paired t-test needs two equally long samples of 2 or more, got "
            f"{len(a)} and {len(b)}"
        )
    diffs = [x - y for x, y in zip(a, b)]
    mean = statistics.fmean(diffs)
    variance = statistics.variance(diffs)
    if variance > 0:
        t = mean / math.sqrt(variance / len(diffs))
    else:
        t = math.copysign(math.inf, mean) if mean else math.nan
    p = student_t_two_sided(t, len(diffs) - 1)
    half = student_t_critical(1 - confidence, len(diffs) - 1) * math.sqrt(
        variance / len(diffs)
    )
    return {
        "t": _finite(t),
        "p": _finite(p),
        "mean_diff": mean,
        "ci": [mean - half, mean + half],
    }


def format_paired_t_test(test: dict[str, Any]) -> list[str]:
    """A :func:`paired_t_test` result as four table cells: the mean difference
    (signed), its confidence interval, ``t`` and ``p`` (``"-"`` where
    undefined)."""
    low, high = test["ci"]
    return [
        f"{test['mean_diff']:+.2f}",
        f"[{low:+.2f}, {high:+.2f}]",
        "-" if test["t"] is None else f"{test['t']:.2f}",
        "-" if test["p"] is None else f"{test['p']:.3f}",
    ]


def student_t_two_sided(t: float, df: int) -> float:
    """``P(|T| >= |t|)`` for Student's t with ``df`` degrees of freedom:
    ``I_x(df / 2, 1 / 2)`` at ``x = df / (df + t²)``."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    square = t * t
    return regularized_beta(df / 2, 0.5, df / (df + square), square / (df + square))


def student_t_critical(p: float, df: int) -> float:
    """The ``t ≥ 0`` with ``P(|T| >= t) = p`` for Student's t with ``df`` degrees
    of freedom (``scipy.stats.t.isf(p / 2, df)``), by bisection on
    :func:`student_t_two_sided`, which falls as ``t`` grows."""
    if not 0 < p <= 1:
        raise ValueError(f"student_t_critical: p must be in (0, 1], got {p}")
    low, high = 0.0, 1.0
    while student_t_two_sided(high, df) > p:
        low, high = high, 2 * high
    for _ in range(100):
        middle = (low + high) / 2
        if student_t_two_sided(middle, df) > p:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def regularized_beta(a: float, b: float, x: float, y: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``; ``y = 1 - x`` is
    given separately to keep its precision where ``x`` is close to 1.

    Its continued fraction (modified Lentz) on the side of ``x`` where it
    converges fast, the other side by ``I_x(a, b) = 1 - I_y(b, a)``.
    """
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    front = math.exp(a * math.log(x) + b * math.log(y) - log_beta)
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, y) / b


def _beta_fraction(
    a: float, b: float, x: float, *, tol: float = 1e-15, max_terms: int = 10_000
) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz's method)."""
    tiny = 1e-300

    def nonzero(value: float) -> float:
        return value if abs(value) > tiny else tiny

    c, d = 1.0, 1 / nonzero(1 - (a + b) * x / (a + 1))
    fraction = d
    for m in range(1, max_terms + 1):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for term in (even, odd):
            d = 1 / nonzero(1 + term * d)
            c = nonzero(1 + term / c)
            fraction *= c * d
        if abs(c * d - 1) <= tol:
            return fraction
    raise ArithmeticError(f"I_x({a}, {b}) at x = {x}: no convergence")


def _group_key(cell: dict[str, Any]) -> tuple:
    return tuple(
        (k, tuple(v) if isinstance(v, list) else v)
        for k, v in Cell(**cell).key().items()
        if k != "seed"
    )


def summary_rows(
    records: list[dict[str, Any]],
    metric: str,
    *,
    reference: Callable[[Cell], dict[str, Any] | None] = lambda cell: None,
) -> list[dict[str, Any]]:
    """One row per group of cell records that differ only in the seed.

    Each row holds the cells' key without the seed, the protocol, ``n`` and the
    seeds, the :data:`METRICS` in ``metric`` (:func:`mean_std` over seeds), what
    the oracle saw, the mean MRR after each round, the timing, and ``paper``:
    ``reference(cell)`` (the paper's figure for the row, see
    :func:`~almea_pyg.pipeline.report.paper_reference`).
    """
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
            row[name] = mean_std([r["metrics"][metric][name] for r in group])
        for name in ("asked", "correct"):  # over all rounds: what the oracle saw
            totals = [sum(x[name] for x in r.get("rounds", [])) for r in group]
            row[name] = mean_std(totals) if cell["rounds"] else None
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
        row["paper"] = reference(Cell(**cell))
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


def compare_variants(
    records: list[dict[str, Any]], a: str, b: str, metric: str
) -> list[dict[str, Any]]:
    """Paired t-tests of variant ``a`` against ``b`` over their common seeds.

    ``a`` and ``b`` are :func:`~almea_pyg.pipeline.grid.variant_label` names: a
    variant alone is its cells trained as the paper says, ``"almea clip1"`` or
    ``"almea fanouts10x10"`` its cells trained so. One test per dataset, seed
    ratio, epochs and dimension (and schedule, for an active-learning side) where
    both have at least two common seeds, on MRR and
    Hits@1 (:func:`paired_t_test`); ``mean_diff`` is ``a - b``.
    """
    if a == b:
        raise ValueError(f"--compare needs two different variants, got {a!r} twice")
    sides: dict[tuple, dict[tuple, dict[int, dict]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for record in records:
        cell = record["cell"]
        label = variant_label(cell)
        if label not in (a, b):
            continue
        setting = (
            cell["dataset"],
            cell["seed_ratio"],
            cell["epochs"],
            cell["dim"],
            cell.get("pool_ratio", 0.0),
        )
        schedule = tuple(cell.get(k) for k in SCHEDULE_FIELDS)
        sides[setting][(label, schedule)][cell["seed"]] = record
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
                    "schedule_a": dict(zip(SCHEDULE_FIELDS, sched_a)),
                    "schedule_b": dict(zip(SCHEDULE_FIELDS, sched_b)),
                    "metric": metric,
                    "n": len(common),
                    "seeds": common,
                }
                for name in ("mrr", "hits@1"):
                    test[name] = paired_t_test(
                        [seeds_a[s]["metrics"][metric][name] for s in common],
                        [seeds_b[s]["metrics"][metric][name] for s in common],
                    )
                tests.append(test)
    if not tests:
        log.warning("--compare %s %s: no setting with 2 common seeds", a, b)
    return tests
