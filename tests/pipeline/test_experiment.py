"""Runs of almea_pyg.pipeline.experiment: the mini-batch setting."""

import json
from dataclasses import asdict, replace

from almea_pyg.cli import build_parser, config_from_args
from almea_pyg.pipeline.experiment import ExperimentConfig, run_experiment
from almea_pyg.pipeline.run_folder import config_fingerprint


def test_fanouts_run_mini_batch_and_are_recorded(tmp_path):
    config = ExperimentConfig(
        epochs=2,
        model={"dim": 8},
        fanouts=[5, 5],
        batch_size=64,
        progress=False,
        output=str(tmp_path),
    )
    result = run_experiment(config)
    assert result["config"]["fanouts"] == [5, 5]
    assert result["metrics"]["csls"]["mrr"] > 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["config"]["fanouts"] == [5, 5]
    assert ExperimentConfig.from_dict(run["config"]) == config
    # the full-batch run is another run: neither folder resumes the other
    full = asdict(replace(config, fanouts=None))
    assert run["fingerprint"]["config"] != config_fingerprint(full)


def test_fanouts_option():
    args = build_parser().parse_args(["train", "--fanouts", "10", "-1"])
    assert config_from_args(args).fanouts == [10, -1]
    assert config_from_args(build_parser().parse_args(["train"])).fanouts is None
