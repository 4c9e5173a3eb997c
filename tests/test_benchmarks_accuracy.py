"""``benchmarks/accuracy.py``: its options reach the grid, ``--dry-run`` and
``--summarise`` (what it runs is tested in ``tests/pipeline``)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from almea_pyg.pipeline.grid import Cell

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"


@pytest.fixture(scope="module")
def acc():
    spec = importlib.util.spec_from_file_location("benchmarks_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_options_reach_the_cells(acc, capsys, tmp_path):
    argv = ["--datasets", "FB15K_DB15K", "--variants", "almea+ds3", "almea"]
    argv += ["--seeds", "0", "--prune", "0.5", "--pool-ratio", "0.1"]
    argv += ["--optimizer", "code", "--max-grad-norm", "5", "--dry-run"]
    assert acc.main([*argv, "--results", str(tmp_path)]) == 0
    names = capsys.readouterr().out.split()
    assert names == [
        "todo",
        "FB15K_DB15K-r0.2-almea-e500-p0.1-g5-optcode-s0",
        "todo",
        "FB15K_DB15K-r0.2-almea+ds3-e500-p0.1-pr0.5-g5-optcode-s0",
    ]


def test_dry_run_lists_done_cells_and_refuses_another_key(acc, capsys, tmp_path):
    done = Cell("synthetic", 0.2, "almea", 0, 2, 16)
    (tmp_path / f"{done.name}.json").write_text(json.dumps({"cell": done.key()}))
    argv = ["--datasets", "synthetic", "--variants", "almea", "base", "--seeds", "0"]
    argv += ["--epochs", "2", "--dim", "16", "--results", str(tmp_path), "--dry-run"]
    assert acc.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        "done  synthetic-r0.2-almea-e2-d16-s0",
        "todo  synthetic-r0.2-base-e2-d16-s0",
    ]
    (tmp_path / f"{done.name}.json").write_text(json.dumps({"cell": {"seed": 9}}))
    assert acc.main(argv) == 2
    assert "move it away" in capsys.readouterr().err
    assert acc.main(["--variants", "almea", "--dry-run"]) == 2
    assert "--datasets is required" in capsys.readouterr().err


def test_datasets_without_the_papers_schedule_need_epochs(acc, capsys, tmp_path):
    argv = ["--datasets", "DBP15K_zh_en", "--seed-ratios", "0.3", "--seeds", "0"]
    argv += ["--variants", "almea", "--results", str(tmp_path), "--dry-run"]
    assert acc.main(argv) == 2
    assert "no schedule for DBP15K_zh_en: give --epochs" in capsys.readouterr().err
    assert acc.main([*argv, "--epochs", "40"]) == 0
    assert capsys.readouterr().out.split() == ["todo", "DBP15K_zh_en-r0.3-almea-e40-s0"]


def test_summarise_prints_what_it_writes(acc, capsys, tmp_path):
    for seed in (0, 1):
        cell = Cell("synthetic", 0.2, "almea", seed, 2)
        metrics = {"hits@1": 10.0 + seed, "hits@10": 20.0, "mrr": 15.0}
        record = {
            "cell": cell.key(),
            "protocol": {},
            "metrics": {"csls": metrics},
            "timing": {"peak_memory_mib": 100.0},
        }
        (tmp_path / f"{cell.name}.json").write_text(json.dumps(record))
    assert acc.main(["--summarise", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "summary.md").read_text() == out
    assert "| synthetic | 0.2 | - | 2 | almea |" in out and "10.50 ± 0.71" in out
