"""Runs of almea_pyg.pipeline.experiment: the mini-batch setting and the test
evaluation's search."""

import json
from dataclasses import asdict, replace

import pytest

from almea_pyg.cli import build_parser, config_from_args, main
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


def test_full_forward_runs_and_is_recorded(tmp_path):
    config = ExperimentConfig(
        epochs=2,
        model={"dim": 8},
        fanouts=[2, 2],
        full_forward=True,
        batch_size=64,
        progress=False,
        output=str(tmp_path),
    )
    result = run_experiment(config)
    assert result["protocol"]["full_forward"] is True
    assert result["metrics"]["csls"]["mrr"] > 0
    run = json.loads((tmp_path / "run.json").read_text())
    sampled = asdict(replace(config, full_forward=False))
    assert run["fingerprint"]["config"] != config_fingerprint(sampled)
    # runs from before the option keep their fingerprint
    before = {k: v for k, v in sampled.items() if k != "full_forward"}
    assert config_fingerprint(before) == config_fingerprint(sampled)
    every = asdict(config)
    del every["full_forward_every"]
    assert run["fingerprint"]["config"] == config_fingerprint(every)
    assert result["protocol"]["full_forward_every"] == 1
    # reused values: another run, recorded as such
    stale = replace(
        config,
        epochs=1,
        batch_size=16,
        full_forward_every=3,
        output=str(tmp_path / "k"),
    )
    result = run_experiment(stale)
    assert result["protocol"]["full_forward_every"] == 3
    run = json.loads((tmp_path / "k" / "run.json").read_text())
    every_step = asdict(replace(stale, full_forward_every=1))
    assert run["fingerprint"]["config"] != config_fingerprint(every_step)


def test_fanouts_option():
    args = build_parser().parse_args(["train", "--fanouts", "10", "-1"])
    assert config_from_args(args).fanouts == [10, -1]
    assert config_from_args(build_parser().parse_args(["train"])).fanouts is None
    args = build_parser().parse_args(["train", "--fanouts", "5", "5", "--full-forward"])
    assert config_from_args(args).full_forward
    assert not config_from_args(build_parser().parse_args(["train"])).full_forward
    args = build_parser().parse_args(
        ["train", "--fanouts", "5", "5", "--full-forward", "--full-forward-every", "4"]
    )
    assert config_from_args(args).full_forward_every == 4
    default = config_from_args(build_parser().parse_args(["train"]))
    assert default.full_forward_every == 1


def test_faiss_search_evaluates_the_run_and_is_recorded(tmp_path, capsys):
    pytest.importorskip("faiss", reason="faiss is not installed (almea-pyg[faiss])")
    base = ExperimentConfig(epochs=2, model={"dim": 8}, progress=False)
    exact = run_experiment(replace(base, output=str(tmp_path / "exact")))
    config = replace(
        base,
        output=str(tmp_path / "faiss"),
        search="faiss",
        search_kwargs={"list_size": 10},
    )
    result = run_experiment(config)
    csls = result["metrics"]["csls"]
    # a flat index is exact: cosine's hits within the lists are the exact ones;
    # a link the lists cannot rank is a miss, so every number is a lower bound
    assert csls["search"]["index"] == "Flat"
    assert csls["search"]["list_size"] == 10
    assert csls["search"]["unranked"] > 0
    for metric in ("cosine", "cosine_r2l"):
        for key in ("hits@1", "hits@10"):
            assert result["metrics"][metric][key] == exact["metrics"][metric][key]
    for metric in ("cosine", "csls", "csls_r2l"):
        for key in ("hits@1", "hits@10", "mrr"):
            assert result["metrics"][metric][key] <= exact["metrics"][metric][key]
        assert result["metrics"][metric]["mrr"] < exact["metrics"][metric]["mrr"]
    run = json.loads((tmp_path / "faiss" / "run.json").read_text())
    assert ExperimentConfig.from_dict(run["config"]) == config
    # exact is a later default: the default run's fingerprint is unchanged
    default = config_fingerprint(asdict(base))
    assert default == config_fingerprint(
        {k: v for k, v in asdict(base).items() if k not in ("search", "search_kwargs")}
    )
    assert run["fingerprint"]["config"] != config_fingerprint(
        asdict(replace(config, search="exact", search_kwargs=None))
    )
    # evaluate: the run's own search by default, or the one typed
    assert main(["evaluate", str(tmp_path / "faiss"), "--metric", "csls"]) == 0
    assert "(faiss Flat, top-10 lists" in capsys.readouterr().out
    argv = ["evaluate", str(tmp_path / "faiss"), "--search", "exact"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "faiss" not in out
    assert f"MRR {exact['metrics']['csls']['mrr']:.2f}" in out


def test_search_options():
    args = build_parser().parse_args(
        ["train", "--search", "faiss", "--faiss-index", "ivf", "--nprobe", "8"]
    )
    config = config_from_args(args)
    assert (config.search, config.search_kwargs) == (
        "faiss",
        {"index": "ivf", "nprobe": 8},
    )
    config = config_from_args(build_parser().parse_args(["train"]))
    assert (config.search, config.search_kwargs) == ("exact", None)
    # typed over a file's faiss search, a list size adds to its settings
    base = replace(config, search="faiss", search_kwargs={"index": "hnsw"})
    args = build_parser().parse_args(["train", "--list-size", "20"])
    assert config_from_args(args, base).search_kwargs == {
        "index": "hnsw",
        "list_size": 20,
    }
    args = build_parser().parse_args(["train", "--list-size", "20"])
    with pytest.raises(ValueError, match="--list-size go with --search faiss"):
        config_from_args(args)
