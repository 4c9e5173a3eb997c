import json
import math

import pytest

from almea_pyg.pipeline.grid import Cell
from almea_pyg.pipeline.report import write_summary
from almea_pyg.pipeline.stats import (
    compare_variants,
    format_paired_t_test,
    mean_std,
    paired_t_test,
    student_t_critical,
    student_t_two_sided,
)


def test_mean_and_sample_std():
    assert mean_std([10.0, 20.0, 30.0]) == {"mean": 20.0, "std": 10.0}
    assert mean_std([3.0]) == {"mean": 3.0, "std": None}


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 29, 200])
@pytest.mark.parametrize("t", [0.0, 0.01, 0.5, 1.0, 2.0, 4.5, 12.0, 60.0, 1e4])
def test_student_t_matches_scipy(t, df):
    stats = pytest.importorskip("scipy.stats")
    expected = 2 * stats.t.sf(t, df)
    assert student_t_two_sided(t, df) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert student_t_two_sided(-t, df) == student_t_two_sided(t, df)


def test_student_t_closed_forms():
    # df = 1: Cauchy, p = 1 - 2 atan(t) / pi; df = 2: p = 1 - t / sqrt(t^2 + 2)
    for t in (0.3, 1.0, 7.0):
        assert student_t_two_sided(t, 1) == pytest.approx(
            1 - 2 * math.atan(t) / math.pi
        )
        assert student_t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2))


@pytest.mark.parametrize(
    "a, b",
    [
        ([10, 20, 30], [9, 18, 26]),
        ([0.1, 0.5, 0.2, 0.9, 0.3], [0.2, 0.1, 0.4, 0.5, 0.35]),
        ([49.1, 50.3, 48.8, 49.9, 50.0, 49.4, 48.7, 50.6], [48.2] * 8),
    ],
)
def test_paired_t_test_matches_scipy(a, b):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.ttest_rel(a, b)
    test = paired_t_test(a, b)
    assert test["t"] == pytest.approx(expected.statistic, rel=1e-12)
    assert test["p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert test["mean_diff"] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    assert test["ci"] == pytest.approx(list(expected.confidence_interval()), rel=1e-9)
    ninety = expected.confidence_interval(confidence_level=0.9)
    assert paired_t_test(a, b, confidence=0.9)["ci"] == pytest.approx(
        list(ninety), rel=1e-9
    )


@pytest.mark.parametrize("df", [1, 2, 4, 29])
@pytest.mark.parametrize("p", [0.001, 0.05, 0.1, 0.5, 1.0])
def test_student_t_critical_inverts_the_two_sided_tail(p, df):
    t = student_t_critical(p, df)
    assert student_t_two_sided(t, df) == pytest.approx(p, rel=1e-9)
    stats = pytest.importorskip("scipy.stats")
    assert t == pytest.approx(stats.t.isf(p / 2, df), rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="p must be in"):
        student_t_critical(0.0, df)


def test_paired_t_test_without_spread():
    # equal differences: t infinite (scipy: inf, p = 0), or undefined when all zero
    assert paired_t_test([2.0, 3.0], [1.0, 2.0]) == {
        "t": None,
        "p": 0.0,
        "mean_diff": 1,
        "ci": [1, 1],
    }
    assert paired_t_test([1.0, 2.0], [1.0, 2.0]) == {
        "t": None,
        "p": None,
        "mean_diff": 0,
        "ci": [0, 0],
    }
    with pytest.raises(ValueError, match="two equally long samples"):
        paired_t_test([1.0], [2.0])


def test_format_paired_t_test():
    test = paired_t_test([3.0, 5.0, 4.5], [1.0, 2.0, 2.5])
    # 7/3 ± 4.3027 sqrt(1/3) / sqrt(3)
    assert format_paired_t_test(test) == ["+2.33", "[+0.90, +3.77]", "7.00", "0.020"]
    assert format_paired_t_test(paired_t_test([1.0, 2.0], [1.0, 2.0])) == [
        "+0.00",
        "[+0.00, +0.00]",
        "-",
        "-",
    ]


def test_compare_variants_refuses_one_variant_twice():
    with pytest.raises(ValueError, match="two different variants"):
        compare_variants([], "almea", "almea", "csls")


def write_cell(results, variant, seed, metrics, *, dataset="synthetic", **schedule):
    epochs = 500 if dataset == "FB15K_DB15K" else 2
    rounds = schedule.pop("round_results", [])
    cell = Cell(dataset, 0.2, variant, seed, epochs, **schedule)
    hits1, hits10, mrr = metrics
    values = {"hits@1": hits1, "hits@10": hits10, "mrr": mrr}
    record = {
        "cell": cell.key(),
        "protocol": {
            "strategy": None,
            "oracle": None,
            "test_links_in_pool": False,
            "modalities": ["graph", "rel"],
        },
        "metrics": {"csls": values, "cosine": {k: v - 1 for k, v in values.items()}},
        "timing": {"seconds_per_epoch_median": 1.0 + seed, "peak_memory_mib": 100.0},
        "rounds": rounds,
    }
    (results / f"{cell.name}.json").write_text(json.dumps(record))


def test_summarise_mean_std_and_paired_t_test(tmp_path):
    # MRR: almea 10, 20, 30 and base 9, 18, 26 -> differences 1, 2, 4
    for seed, (a, b) in enumerate([(10, 9), (20, 18), (30, 26)]):
        write_cell(tmp_path, "almea", seed, (a / 2, a + 5, a))
        write_cell(tmp_path, "base", seed, (b / 2, b + 5, b))
    write_cell(tmp_path, "no_lsc", 0, (1.0, 2.0, 3.0))
    write_cell(tmp_path, "almea", 0, (40.0, 70.0, 50.0), dataset="FB15K_DB15K")
    (tmp_path / "notes.json").write_text("{}")  # not a cell: ignored
    returned, out = write_summary(tmp_path, metric="csls", compare=[("almea", "base")])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "summary.md").read_text() == out
    assert returned == summary
    rows = {(r["dataset"], r["variant"]): r for r in summary["rows"]}
    assert len(rows) == 4
    almea = rows["synthetic", "almea"]
    assert almea["n"] == 3 and almea["seeds"] == [0, 1, 2]
    assert almea["mrr"]["mean"] == pytest.approx(20.0)
    assert almea["mrr"]["std"] == pytest.approx(10.0)  # sample std, ddof=1
    assert almea["hits@1"]["std"] == pytest.approx(5.0)
    assert almea["seconds_per_epoch_median"] == pytest.approx(2.0)
    base = rows["synthetic", "base"]
    assert base["mrr"]["mean"] == pytest.approx(53 / 3)
    mean = 53 / 3
    std = math.sqrt(((9 - mean) ** 2 + (18 - mean) ** 2 + (26 - mean) ** 2) / 2)
    assert base["mrr"]["std"] == pytest.approx(std)
    single = rows["synthetic", "no_lsc"]
    assert single["n"] == 1 and single["mrr"]["std"] is None
    assert "| 3.00 |" in out and "± -" not in out  # one seed: the mean alone
    # the paper's Table 1 figure only where the paper has the row
    assert almea["paper"] is None
    paper = rows["FB15K_DB15K", "almea"]["paper"]
    assert paper["source"] == "Table 1: ALMEA w/o ACS"
    assert (paper["mrr"], paper["hits@1"], paper["hits@10"]) == (56.00, 46.81, 73.52)
    assert "56.00 ± 0.12" in out
    # paired t-test on differences 1, 2, 4: mean 7/3, sd sqrt(7/3), t = sqrt(7);
    # df = 2: p = 2 (1 - F(t)) with F(t) = 1/2 + t / (2 sqrt(t^2 + 2)) = 1 - sqrt(7)/3
    (test,) = summary["comparisons"]
    assert (test["a"], test["b"], test["n"]) == ("almea", "base", 3)
    assert test["seeds"] == [0, 1, 2]
    assert test["mrr"]["mean_diff"] == pytest.approx(7 / 3)
    assert test["mrr"]["t"] == pytest.approx(math.sqrt(7))
    assert test["mrr"]["p"] == pytest.approx(1 - math.sqrt(7) / 3)
    assert test["hits@1"]["t"] == pytest.approx(math.sqrt(7))
    # 95 % interval: 7/3 ± t_{0.975, 2} sqrt(7/3) / sqrt(3), t_{0.975, 2} = 4.3027
    half = 4.302652729749464 * math.sqrt(7 / 9)
    assert test["mrr"]["ci"] == pytest.approx([7 / 3 - half, 7 / 3 + half])
    assert "Paired t-tests" in out
    assert (
        f"| +2.33 | [{7 / 3 - half:+.2f}, {7 / 3 + half:+.2f}] | 2.65 | 0.118 |" in out
    )


def test_summarise_keeps_clipped_cells_apart(tmp_path):
    for seed in (0, 1):
        write_cell(tmp_path, "almea", seed, (10.0, 20.0, 15.0 + seed))
        write_cell(tmp_path, "base", seed, (10.0, 20.0, 14.0))
    write_cell(tmp_path, "almea", 0, (1.0, 2.0, 3.0), max_grad_norm=50.0)
    _, out = write_summary(tmp_path, metric="csls", compare=[("almea", "base")])
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    clipped = [r for r in rows if r.get("max_grad_norm") == 50.0]
    assert len(rows) == 3 and len(clipped) == 1 and clipped[0]["n"] == 1
    assert out.count("almea clip50") == 1
    (test,) = json.loads((tmp_path / "summary.json").read_text())["comparisons"]
    assert test["n"] == 2 and test["mrr"]["mean_diff"] == pytest.approx(1.5)


def test_compare_by_label_pairs_mini_batch_cells_with_whole_graph_ones(tmp_path):
    for seed in (0, 1, 2):
        write_cell(tmp_path, "almea", seed, (10.0, 20.0, 30.0 + seed))
        write_cell(
            tmp_path, "almea", seed, (10.0, 20.0, 29.0 + 2 * seed), fanouts=(10, 10)
        )
    compare = [("almea fanouts10x10", "almea")]
    _, out = write_summary(tmp_path, metric="csls", compare=compare)
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {tuple(r.get("fanouts") or ()): r for r in summary["rows"]}
    assert sorted(rows) == [(), (10, 10)]
    assert rows[10, 10]["mrr"]["mean"] == pytest.approx(31.0)
    assert rows[()]["mrr"]["mean"] == pytest.approx(31.0)
    assert "almea fanouts10x10" in out
    (test,) = summary["comparisons"]
    assert (test["a"], test["b"], test["n"]) == ("almea fanouts10x10", "almea", 3)
    assert test["mrr"]["mean_diff"] == pytest.approx(0.0)  # -1, 0, +1
    assert test["mrr"]["t"] == pytest.approx(0.0)


def test_summarise_keeps_pool_ratios_apart_and_counts_what_the_oracle_saw(tmp_path):
    schedule = dict(rounds=2, interval=1, budget=0.01, pool_ratio=0.1)
    for seed in (0, 1):
        write_cell(tmp_path, "almea", seed, (10.0, 20.0, 30.0 + seed))
        write_cell(tmp_path, "almea", seed, (11.0, 21.0, 31.0), pool_ratio=0.1)
        rounds = [{"asked": 0, "correct": 0, "mrr": 30.0 + seed}]
        rounds.append({"asked": 8, "correct": 3 + seed, "mrr": 32.0})
        rounds.append({"asked": 6, "correct": 5, "mrr": 33.0 + 2 * seed})
        write_cell(
            tmp_path, "almea+ds3", seed, (12.0 + seed, 22.0, 33.0 + 2 * seed),
            round_results=rounds, **schedule,
        )  # fmt: skip
    compare = [("almea+ds3", "almea")]
    _, out = write_summary(tmp_path, metric="csls", compare=compare)
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {(r["variant"], r["pool_ratio"]): r for r in summary["rows"]}
    assert sorted(rows) == [("almea", 0.0), ("almea", 0.1), ("almea+ds3", 0.1)]
    assert rows["almea", 0.0]["mrr"]["mean"] == pytest.approx(30.5)
    assert rows["almea", 0.1]["asked"] is None
    active = rows["almea+ds3", 0.1]
    assert active["asked"]["mean"] == 14 and active["correct"]["mean"] == 8.5
    assert "| synthetic | 0.2 | 0.1 | 2 | almea+ds3 (R2/i1/b0.01) |" in out
    assert "| 14.0 | 8.5 |" in out
    assert active["round_mrr"] == [30.5, 32.0, 34.0]
    assert rows["almea", 0.1]["round_mrr"] == []
    assert "| synthetic | 0.2 | 0.1 | almea+ds3 | 30.50 | 32.00 | 34.00 |" in out
    # compared with the run at the same pool ratio only (MRR diffs 2 and 4)
    (test,) = summary["comparisons"]
    assert test["pool_ratio"] == 0.1 and test["mrr"]["mean_diff"] == pytest.approx(3.0)
    assert "| almea+ds3 | almea | synthetic | 0.2 | 0.1 | 2 | 2 | +3.00 |" in out


def test_summarise_cosine_metric(tmp_path):
    for seed in (0, 1):
        write_cell(tmp_path, "almea", seed, (10.0 + seed, 20.0, 30.0))
    write_summary(tmp_path, metric="cosine")
    (row,) = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert row["metric"] == "cosine"
    assert row["hits@1"]["mean"] == pytest.approx(9.5)
