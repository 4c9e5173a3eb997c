import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "missing_modality.py"


@pytest.fixture(scope="module")
def mm():
    spec = importlib.util.spec_from_file_location("benchmarks_missing_modality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves names there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_cells_and_what_each_method_runs(mm, tmp_path):
    argv = ["--modalities", "img", "attr", "--fractions", "0.4", "--seeds", "0", "1"]
    args = mm.build_parser().parse_args(argv + ["--work-dir", str(tmp_path)])
    cells = mm.grid_cells(args)
    assert len(cells) == 2 * 2 * 6
    assert {cell.epochs for cell in cells} == {100}  # the synthetic schedule
    names = [cell.name for cell in cells]
    methods = ("zero", "mean", "propagate", "lsl", "linear", "lsl_kl")
    assert names[:6] == [f"synthetic-img-p0.4-{method}-e100-s0" for method in methods]
    settings = {}
    for cell in cells[:6]:
        config = mm.cell_config(cell, args)
        assert (config.drop_modality, config.drop_fraction) == ("img", 0.4)
        assert config.seed == 0 and config.output == str(tmp_path / cell.name)
        model = dict(config.model)
        assert model.pop("dim") == 300
        settings[cell.method] = (config.fill, model)
    assert settings == {
        "zero": ("zero", {"impute_missing": False}),
        "mean": ("mean", {"impute_missing": False}),
        "propagate": ("propagate", {"impute_missing": False}),
        "lsl": ("zero", {"impute_missing": True}),
        "linear": ("zero", {"impute_missing": True, "imputer": "linear"}),
        "lsl_kl": ("zero", {"impute_missing": True, "lambda_dml": 1 / 300}),
    }


def test_done_cells_are_skipped_and_lsl_evaluates_the_zero_checkpoint(
    mm, tmp_path, monkeypatch
):
    tiny = ["--modalities", "img", "--fractions", "0.4", "--seeds", "0"]
    tiny += ["--epochs", "1", "--dim", "8", "--threads", "1"]
    results, work = tmp_path / "results", tmp_path / "work"
    argv = tiny + ["--methods", "zero", "lsl", "linear", "--results", str(results)]
    assert mm.main(argv + ["--work-dir", str(work)]) == 0
    zero, lsl, linear = (
        json.loads((results / f"synthetic-img-p0.4-{m}-e1-s0.json").read_text())
        for m in ("zero", "lsl", "linear")
    )
    assert lsl["warm_start"] == linear["warm_start"] == "synthetic-img-p0.4-zero-e1-s0"
    assert zero["warm_start"] is None
    assert lsl["protocol"]["imputer"] == "lsl" and zero["protocol"]["imputer"] is None
    assert linear["protocol"]["imputer"] == "linear"
    assert linear["metrics"]["csls_impute_false"] == zero["metrics"]["csls"]
    # a modality is imputed where its held-out R^2 clears the bar; a 1-epoch
    # model's may not, and then the cell scores as zero-fill
    fit = linear["imputer_fit"]
    assert set(fit) == {"graph", "attr", "img", "rel"} and zero["imputer_fit"] is None
    imputes = any(fit[m]["imputes"] for m in ("attr", "img", "rel"))
    assert imputes == (linear["metrics"]["csls"] != zero["metrics"]["csls"])
    # R^2 of each model's own imputer on the removed rows: the least-squares
    # fit beats LSL's untrained decoders
    r2 = {
        m["protocol"]["imputer"]: m["missing_modality"]["imputation_r2"]
        for m in (lsl, linear)
    }
    assert r2["linear"] > r2["lsl"]
    assert lsl["protocol"]["removed_modality"] == "img"
    assert lsl["metrics"]["csls_impute_false"] == zero["metrics"]["csls"]
    # the same as training the lsl cell itself
    alone = tmp_path / "alone"
    argv_alone = tiny + ["--methods", "lsl", "--results", str(alone)]
    assert mm.main(argv_alone + ["--work-dir", str(tmp_path / "work_alone")]) == 0
    trained = json.loads((alone / "synthetic-img-p0.4-lsl-e1-s0.json").read_text())
    assert trained["warm_start"] is None
    assert trained["metrics"] == lsl["metrics"]
    assert trained["missing_modality"] == lsl["missing_modality"]

    def run_cell(cell, args):
        raise AssertionError(f"{cell.name} is done")

    monkeypatch.setattr(mm, "run_cell", run_cell)
    assert mm.main(argv + ["--work-dir", str(work)]) == 0


def write_cell(folder, method, seed, affected_mrr, fill_r2=None, heldout_r2=None):
    cell = {"dataset": "synthetic", "modality": "img", "fraction": 0.4}
    cell.update(method=method, seed=seed, epochs=100)
    part = {"csls": {"hits@1": affected_mrr / 2, "mrr": affected_mrr}}
    record = {
        "cell": cell,
        "metrics": {"csls": {"mrr": 90.0}},
        "missing_modality": {
            "links": {"affected": 700, "rest": 600},
            "affected": part,
            "rest": {"csls": {"hits@1": 80.0, "mrr": 85.0}},
            "fill_r2": fill_r2,
            "imputation_r2": -0.5,
        },
    }
    if heldout_r2 is not None:
        record["imputer_fit"] = {"img": {"heldout_r2": heldout_r2}}
        parts = ("one_side_lacks", "both_lack", "both_have")
        record["missing_modality"]["by_presence"] = {
            "links": dict(zip(parts, (500, 300, 500))),
            **{p: {"csls": {"mrr": mrr}} for p, mrr in zip(parts, (60.0, 40.0, 80.0))},
        }
    (folder / f"{method}-{seed}.json").write_text(json.dumps(record))


def test_summary_averages_seeds_and_tests_against_zero(mm, tmp_path):
    for seed, (zero, lsl) in enumerate([(60.0, 58.0), (62.0, 59.0), (61.0, 61.0)]):
        write_cell(tmp_path, "zero", seed, zero, fill_r2=-0.1)
        write_cell(tmp_path, "lsl", seed, lsl, fill_r2=-0.1)
    write_cell(tmp_path, "mean", 0, 70.0, fill_r2=0.0)  # one seed: no test
    for seed, r2 in enumerate([0.2, 0.4]):
        write_cell(tmp_path, "linear", seed, 61.0, heldout_r2=r2)
    markdown = mm.write_summary(tmp_path)
    (block,) = json.loads((tmp_path / "summary.json").read_text())
    assert block["setting"] == {
        "dataset": "synthetic",
        "modality": "img",
        "fraction": 0.4,
        "epochs": 100,
    }
    assert list(block["methods"]) == ["zero", "mean", "lsl", "linear"]
    assert block["methods"]["linear"]["heldout_r2"]["mean"] == pytest.approx(0.3)
    assert block["methods"]["zero"]["heldout_r2"] is None
    lsl = block["methods"]["lsl"]["affected_mrr"]
    assert lsl["mean"] == pytest.approx(178 / 3)
    assert lsl["std"] == pytest.approx(statistics.stdev([58.0, 59.0, 61.0]))
    _, test = block["paired_vs_zero"]
    diffs = [-2.0, -3.0, 0.0]
    assert test["method"] == "lsl" and test["seeds"] == [0, 1, 2]
    assert test["affected_mrr"]["mean_diff"] == pytest.approx(statistics.fmean(diffs))
    t = statistics.fmean(diffs) / (statistics.stdev(diffs) / 3**0.5)
    assert test["affected_mrr"]["t"] == pytest.approx(t)
    assert (
        "| lsl | 3 | 700 ± 0 | 59.33 ± 1.53 | 29.67 ± 0.76 | 85.00 ± 0.00 |" in markdown
    )
    assert "| -0.500 ± 0.000 | 0.300 ± 0.141 |" in markdown
    # only cells that record it have the table by presence
    assert "| method | one side lacks it | both lack it | both have it |" in markdown
    assert (
        "| linear | 60.00 ± 0.00 (500 ± 0) | 40.00 ± 0.00 (300 ± 0) "
        "| 80.00 ± 0.00 (500 ± 0) |" in markdown
    )
    assert "| zero | 60" not in markdown
    assert (
        "| mean | 1 | 700 | 70.00 | 35.00 | 85.00 | 80.00 | 90.00 | 0.000 |" in markdown
    )
    assert "| lsl | 3 | -1.67 | [-5.46, +2.13] | -1.89 | 0.199 |" in markdown
