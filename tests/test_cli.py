import json

import pytest

from almea_pyg.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = [
        "train",
        "--epochs",
        "2",
        "--dim",
        "16",
        "--output",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    return out


def test_train_writes_result_with_protocol(run_dir, capsys):
    result = json.loads((run_dir / "result.json").read_text())
    protocol = result["protocol"]
    assert protocol["dataset"] == "synthetic"
    assert protocol["seed_ratio"] == 0.2 and protocol["seed"] == 0
    assert protocol["epochs"] == 2 and protocol["test_links_in_pool"] is False
    assert protocol["modalities"] == ["graph", "attr", "img", "rel"]
    assert {"cosine", "csls", "csls_impute_true"} == set(result["metrics"])
    assert result["timing"]["seconds_per_epoch"] > 0
    assert (run_dir / "log.csv").exists() and (run_dir / "checkpoint.pt").exists()


def test_evaluate_reproduces_training_metrics(run_dir, capsys):
    result = json.loads((run_dir / "result.json").read_text())
    assert main(["evaluate", str(run_dir), "--metric", "csls"]) == 0
    out = capsys.readouterr().out
    assert f"Hits@1 {result['metrics']['csls']['hits@1']:.2f}" in out


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("almea-pyg: error:") and "result.json" in err
    assert err.count("\n") == 1
