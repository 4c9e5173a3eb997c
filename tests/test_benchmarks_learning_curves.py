import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curves.py"


@pytest.fixture(scope="module")
def lc():
    spec = importlib.util.spec_from_file_location("benchmarks_learning_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_cell(folder, variant, seed, mrrs, asked, selection=None):
    cell = {"dataset": "synthetic", "seed_ratio": 0.01, "pool_ratio": 0.2}
    cell.update(variant=variant, seed=seed, rounds=2, interval=10, budget=0.01)
    cell["epochs"] = 150
    rounds = [
        {
            "round": r,
            "asked": a,
            "gained": a // 2,
            "already_top1": 1 if a else 0,
            "selection": selection if r and selection else {},
            "mrr": m,
            "hits@1": m / 2,
        }
        for r, (m, a) in enumerate(zip(mrrs, asked))
    ]
    record = {"cell": cell, "rounds": rounds}
    (folder / f"{variant}-s{seed}.json").write_text(json.dumps(record))


def test_curves_average_seeds_and_test_against_passive(lc, tmp_path):
    write_cell(tmp_path, "almea+passive", 0, [10.0, 20.0, 30.0], [0, 8, 8])
    write_cell(tmp_path, "almea+passive", 1, [12.0, 22.0, 34.0], [0, 8, 8])
    ds3 = {"pool": 40, "representatives": 10}
    write_cell(tmp_path, "almea+ds3", 0, [10.0, 15.0, 21.0], [0, 6, 8], ds3)
    write_cell(tmp_path, "almea+ds3", 1, [12.0, 18.0, 23.0], [0, 8, 8], ds3)
    (tmp_path / "summary.json").write_text("{}")  # not a cell: ignored
    assert lc.main(["--results", str(tmp_path), "--plot", str(tmp_path / "c.png")]) == 0
    (block,) = json.loads((tmp_path / "curves.json").read_text())
    ds3_rows = block["strategies"]["almea+ds3"]
    assert ds3_rows[1]["asked"]["mean"] == 7.0  # 6 and 8 questions
    assert ds3_rows[2]["asked"]["mean"] == 15.0  # cumulative
    assert ds3_rows[2]["mrr"]["mean"] == 22.0
    assert ds3_rows[1]["representatives"]["mean"] == 10
    tests = {(t["variant"], t["round"]): t for t in block["paired_vs_reference"]}
    assert set(tests) == {("almea+ds3", 1), ("almea+ds3", 2)}
    assert tests[("almea+ds3", 2)]["mrr"]["mean_diff"] == pytest.approx(-10.0)
    markdown = (tmp_path / "curves.md").read_text()
    row = "| almea+ds3 | 2 | 15 ± 1 | 8 ± 1 | 2 ± 0 | 10 ± 0 / 40 ± 0 | 22.00 ± 1.41 |"
    assert row in markdown
    assert (tmp_path / "c.png").stat().st_size > 0


def test_training_options_are_strategies_of_their_own(lc, tmp_path):
    # a clipped passive run is not averaged with the plain one; --variants keeps
    # it and the reference, across folders, in the settings where it ran
    plain, options = tmp_path / "plain", tmp_path / "options"
    plain.mkdir()
    options.mkdir()
    for seed, mrr in ((0, 30.0), (1, 34.0)):
        write_cell(plain, "almea+passive", seed, [10.0, 20.0, mrr], [0, 8, 8])
        write_cell(plain, "almea+ds3", seed, [10.0, 15.0, mrr - 8], [0, 8, 8])
    for seed, mrr in ((0, 32.0), (1, 35.0)):
        write_cell(options, "almea+passive", seed, [10.0, 20.0, mrr], [0, 8, 8])
        cell_file = options / f"almea+passive-s{seed}.json"
        record = json.loads(cell_file.read_text())
        record["cell"]["max_grad_norm"] = 1.0
        cell_file.write_text(json.dumps(record))
    argv = ["--results", str(options), str(plain), "--variants", "almea+passive clip1"]
    assert lc.main(argv) == 0
    (block,) = json.loads((options / "curves.json").read_text())
    assert set(block["strategies"]) == {"almea+passive", "almea+passive clip1"}
    assert block["strategies"]["almea+passive"][2]["mrr"]["mean"] == 32.0
    (test,) = [t for t in block["paired_vs_reference"] if t["round"] == 2]
    assert test["variant"] == "almea+passive clip1"
    assert test["mrr"]["mean_diff"] == pytest.approx(1.5)
    assert not (plain / "curves.json").exists()
    both = [*argv, "almea+ds3"]
    assert lc.main(both) == 0
    (block,) = json.loads((options / "curves.json").read_text())
    assert set(block["strategies"]) == {
        "almea+passive",
        "almea+passive clip1",
        "almea+ds3",
    }
    with pytest.raises(SystemExit):
        lc.main(["--results", str(plain), "--variants", "almea+passive clip1"])
