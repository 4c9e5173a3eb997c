import csv
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
    assert protocol["pool_ratio"] == 0.0 and protocol["pool_links"] == 0
    assert protocol["max_grad_norm"] is None
    assert {"cosine", "csls", "csls_impute_true"} == set(result["metrics"])
    latent = result["latent_diagnostics"]
    assert set(latent) == set(protocol["modalities"])
    assert all(0 <= row["active_units"] <= 16 for row in latent.values())
    assert result["timing"]["seconds_per_epoch"] > 0
    assert (run_dir / "log.csv").exists() and (run_dir / "checkpoint.pt").exists()


def test_pool_ratio_hides_links_from_every_split(tmp_path):
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress"]
    argv += ["--pool-ratio", "0.25", "--output", str(tmp_path)]
    assert main(argv) == 0
    protocol = json.loads((tmp_path / "result.json").read_text())["protocol"]
    shown = protocol["train_links"] + protocol["test_links"]
    assert protocol["pool_ratio"] == 0.25 and protocol["pool_links"] > 0
    links = shown + protocol["pool_links"]
    assert protocol["pool_links"] == round(0.25 * links)


def test_max_grad_norm_reaches_the_trainer(tmp_path):
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress"]
    argv += ["--max-grad-norm", "0.5", "--output", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["protocol"]["max_grad_norm"] == 0.5
    assert result["config"]["max_grad_norm"] == 0.5
    with open(tmp_path / "log.csv") as f:
        (row,) = csv.DictReader(f)
    assert float(row["grad_norm"]) > 0.5  # logged before clipping


def test_evaluate_reproduces_training_metrics(run_dir, capsys):
    result = json.loads((run_dir / "result.json").read_text())
    assert main(["evaluate", str(run_dir), "--metric", "csls"]) == 0
    out = capsys.readouterr().out
    assert f"Hits@1 {result['metrics']['csls']['hits@1']:.2f}" in out
    graph = result["latent_diagnostics"]["graph"]
    assert f"latent graph: {graph['active_units']} active units" in out


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("almea-pyg: error:") and "result.json" in err
    assert err.count("\n") == 1


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_select_writes_a_label_file_without_test_entities(run_dir, capsys):
    from almea_pyg.data import make_synthetic_pair

    out = run_dir / "picked.csv"
    argv = ["select", str(run_dir), "--budget", "12", "--strategy", "random"]
    assert main(argv + ["--output", str(out)]) == 0
    assert "12 pairs selected by random" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 12 and {r["round"] for r in rows} == {"0"}
    pair = make_synthetic_pair().split(0.2, seed=0)
    ids = pair.source["entity"].ids
    test_sources = {ids[i] for i in pair.test_links[0].tolist()}
    seeds = {ids[i] for i in pair.train_links[0].tolist()}
    picked = {r["source_id"] for r in rows}
    assert picked <= set(ids) and not picked & (test_sources | seeds)
    assert main(argv + ["--transductive", "--output", str(out)]) == 0
    assert len(_rows(out)) == 12


def test_select_unknown_strategy_is_a_one_line_error(run_dir, capsys):
    assert main(["select", str(run_dir), "--strategy", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("almea-pyg: error: unknown strategy 'nope'")


def test_label_export_rewrites_the_pending_round(tmp_path, capsys):
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress", "--rounds", "1"]
    argv += ["--budget", "4", "--oracle", "human", "--output", str(tmp_path)]
    assert main(argv) == 0
    labels = tmp_path / "labels_round1.csv"
    original = labels.read_text()
    labels.unlink()
    assert main(["label", "export", "--run", str(tmp_path)]) == 0
    assert labels.read_text() == original and len(_rows(labels)) == 4
    assert main(["label", "export", "--run", str(tmp_path / "missing")]) == 2
