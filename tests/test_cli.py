import csv
import json
import shutil
import sys

import pytest
import torch

from almea_pyg.cli import build_parser, config_from_args, main


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
    directions = {f"{m}{d}" for m in ("cosine", "csls") for d in ("", "_r2l", "_mean")}
    assert directions | {"csls_impute_true"} == set(result["metrics"])
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


def test_a_controlled_removal_and_fill_from_the_command_line(tmp_path, capsys):
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress"]
    argv += ["--drop-modality", "img", "--drop-fraction", "0.4", "--fill", "propagate"]
    assert main(argv + ["--output", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text())
    protocol = result["protocol"]
    assert (protocol["removed_modality"], protocol["removed_fraction"]) == ("img", 0.4)
    assert (protocol["fill"], protocol["imputer"]) == ("propagate", None)
    config = result["config"]
    assert (config["drop_modality"], config["drop_fraction"]) == ("img", 0.4)
    links = result["missing_modality"]["links"]
    assert f"affected links ({links['affected']}): CSLS Hits@1" in out
    assert f"    rest links ({links['rest']}): CSLS Hits@1" in out
    assert "fill_r2 on the removed rows: " in out
    # the run folder knows its pair: evaluate rebuilds it with the removal
    assert main(["evaluate", str(tmp_path), "--metric", "csls"]) == 0
    hits = result["metrics"]["csls"]["hits@1"]
    assert f"Hits@1 {hits:.2f}" in capsys.readouterr().out
    # a fraction without a modality is a one-line error
    assert main(TINY + ["--epochs", "1", "--drop-fraction", "0.4"]) == 2
    err = capsys.readouterr().err
    assert "drop_fraction 0.4 needs a drop_modality" in err and err.count("\n") == 1


def test_evaluate_reproduces_training_metrics(run_dir, capsys):
    result = json.loads((run_dir / "result.json").read_text())
    assert main(["evaluate", str(run_dir), "--metric", "csls"]) == 0
    out = capsys.readouterr().out
    assert f"Hits@1 {result['metrics']['csls']['hits@1']:.2f}" in out
    graph = result["latent_diagnostics"]["graph"]
    assert f"latent graph: {graph['active_units']} active units" in out


def test_evaluate_with_another_imputation(run_dir, capsys):
    # the run trained without imputing; evaluate imputes as asked, and the
    # other setting it reports in result.json is what --impute reproduces
    result = json.loads((run_dir / "result.json").read_text())
    assert main(["evaluate", str(run_dir), "--metric", "csls", "--impute"]) == 0
    out = capsys.readouterr().out
    assert f"MRR {result['metrics']['csls_impute_true']['mrr']:.2f}" in out
    argv = ["evaluate", str(run_dir), "--metric", "csls", "--impute"]
    assert main(argv + ["--imputer", "linear"]) == 0
    out = capsys.readouterr().out
    assert "linear imputer attr: held-out R2 " in out
    assert main(["evaluate", str(run_dir), "--metric", "csls", "--no-impute"]) == 0
    out = capsys.readouterr().out
    assert f"MRR {result['metrics']['csls']['mrr']:.2f}" in out


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
    assert main(argv + ["--lam-rule", "paper", "--output", str(out)]) == 2
    assert "--lam-rule: not an option of strategy 'random'" in capsys.readouterr().err


def test_select_defaults_to_ds3_at_the_relative_rule(run_dir, capsys):
    argv = ["select", str(run_dir), "--budget", "12", "-v"]
    assert main(argv + ["--output", str(run_dir / "a.csv")]) == 0
    assert "pairs selected by ds3" in capsys.readouterr().out
    paper = argv + ["--lam-rule", "paper", "--output", str(run_dir / "b.csv")]
    assert main(paper) == 0
    relative, by_paper = _rows(run_dir / "a.csv"), _rows(run_dir / "b.csv")
    # the relative rule keeps representatives where the paper's keeps ~none
    assert len(relative) == 12 and len(by_paper) < len(relative)
    with pytest.raises(SystemExit):
        main(argv + ["--lam-rule", "nope"])
    blocks = argv + ["--prune", "0.8", "--block-size", "10"]
    assert main(blocks + ["--output", str(run_dir / "c.csv")]) == 0
    assert 0 < len(_rows(run_dir / "c.csv")) <= 12
    assert main(blocks + ["--strategy", "random"]) == 2
    assert (
        "--block-size, --prune: not an option of strategy 'random'"
        in capsys.readouterr().err
    )


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


TINY = ["train", "--dim", "8", "--no-progress"]


def test_diverged_run_exits_non_zero_and_reports_no_score(tmp_path, capsys):
    argv = TINY + ["--lr", "1e6", "--epochs", "3", "--output", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("almea-pyg: training diverged: loss is nan at epoch")
    assert err.count("\n") == 1
    assert not (tmp_path / "result.json").exists()
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "diverged"


class Killed(Exception):
    """Stands for the process being killed."""


def kill_at_epoch(monkeypatch, epoch):
    from almea_pyg.train.trainer import Trainer

    train_epoch = Trainer.train_epoch

    def dying(self):
        if self.epoch + 1 == epoch:
            raise Killed
        return train_epoch(self)

    monkeypatch.setattr(Trainer, "train_epoch", dying)


def test_killed_run_resumes_from_its_checkpoint_alone(tmp_path, monkeypatch):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    argv = TINY + ["--epochs", "5", "--checkpoint-every", "2", "--seed", "1"]
    assert main(argv + ["--output", str(straight)]) == 0
    # A finished seed-0 run is replaced, then the new run is killed mid-way.
    assert main(TINY + ["--epochs", "2", "--output", str(killed)]) == 0
    with monkeypatch.context() as patch:
        kill_at_epoch(patch, 4)
        with pytest.raises(Killed):
            main(argv + ["--output", str(killed), "--overwrite"])
    assert not (killed / "result.json").exists()
    assert main(["train", "--resume", "--output", str(killed), "--no-progress"]) == 0
    resumed = json.loads((killed / "result.json").read_text())
    expected = json.loads((straight / "result.json").read_text())
    assert resumed["protocol"]["seed"] == 1 and resumed["protocol"]["epochs"] == 5
    assert resumed["metrics"] == expected["metrics"]
    assert [int(r["epoch"]) for r in _rows(killed / "log.csv")] == [1, 2, 3, 4, 5]


def test_copied_run_resumes_into_the_copy(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = (run_dir / "result.json").read_bytes()
    assert main(["train", "--resume", "--output", str(copy), "--no-progress"]) == 0
    assert str(copy / "result.json") in capsys.readouterr().out
    assert (run_dir / "result.json").read_bytes() == before
    assert json.loads((copy / "result.json").read_text())["config"]["output"] == str(
        copy
    )


def test_a_used_folder_is_refused_unless_overwrite(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    same = ["train", "--epochs", "2", "--dim", "16", "--no-progress"]
    assert main(same + ["--output", str(copy)]) == 2
    assert "holds this same run: --resume continues it" in capsys.readouterr().err
    assert main(same + ["--seed", "1", "--output", str(copy)]) == 2
    assert "holds a different run (dataset synthetic" in capsys.readouterr().err
    assert main(same + ["--seed", "1", "--output", str(copy), "--overwrite"]) == 0
    result = json.loads((copy / "result.json").read_text())
    assert result["protocol"]["seed"] == 1
    assert [int(r["epoch"]) for r in _rows(copy / "log.csv")] == [1, 2]


@pytest.mark.parametrize(
    "option",
    [
        ["--epochs", "0"],
        ["--epochs", "-1"],
        ["--dim", "0"],
        ["--rounds", "-1"],
        ["--interval", "0"],
        ["--budget", "0"],
        ["--budget", "-0.1"],
        ["--budget", "2.5"],
        ["--seed-ratio", "1.5"],
        ["--lr", "nan"],
        ["--drop-fraction", "1.5"],
        ["--drop-fraction", "-0.1"],
        ["--lr-decay", "0"],
        ["--lr-decay", "1.5"],
        ["--rewarmup", "-1"],
    ],
)
def test_invalid_numbers_are_refused_by_the_parser(option, capsys):
    with pytest.raises(SystemExit) as info:
        main(TINY + option)
    assert info.value.code == 2
    assert f"argument {option[0]}: must be" in capsys.readouterr().err


def test_output_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert main(TINY + ["--epochs", "1", "--output", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_one_line_error(capsys):
    assert main(TINY + ["--epochs", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available here" in err and err.count("\n") == 1


def test_resuming_while_labels_are_pending_asks_for_them(tmp_path, capsys):
    argv = TINY + ["--epochs", "1", "--rounds", "1", "--budget", "4"]
    argv += ["--oracle", "human", "--output", str(tmp_path)]
    assert main(argv) == 0
    labels = tmp_path / "labels_round1.csv"
    capsys.readouterr()
    assert main(["train", "--resume", "--output", str(tmp_path), "--no-progress"]) == 0
    assert "round 1: labels requested in" in capsys.readouterr().out
    rows = _rows(labels)
    with open(labels, "w", newline="") as handle:  # one row deleted, one "no"
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            [{**row, "label": "no" if i else "yes"} for i, row in enumerate(rows[:3])]
        )
    assert main(["label", "import", str(labels), "--run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "imported 1 yes and 2 no; 1 of 4 asked pairs have no answer" in out
    assert main(["train", "--resume", "--output", str(tmp_path), "--no-progress"]) == 0
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "done"
    assert main(["label", "import", str(labels), "--run", str(tmp_path)]) == 2
    assert "no round waiting for labels" in capsys.readouterr().err


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "{run}"],
        ["select", "{run}", "--budget", "3"],
        ["train", "--resume", "--output", "{run}", "--no-progress"],
        ["label", "import", "{run}/labels.csv", "--run", "{run}"],
        ["label", "export", "--run", "{run}"],
    ],
)
def test_a_crafted_checkpoint_runs_no_code(run_dir, tmp_path, command, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    marker = tmp_path / "marker"
    torch.save({"model": _Payload(marker)}, copy / "checkpoint.pt")
    assert main([part.format(run=copy) for part in command]) == 2
    assert "was not unpickled" in capsys.readouterr().err
    assert not marker.exists()


def test_the_default_cache_is_per_user_not_per_directory(monkeypatch, tmp_path):
    from almea_pyg.pipeline.experiment import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "almea_pyg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir().is_absolute()


def test_the_codes_optimizer_is_selectable_and_stated(tmp_path):
    argv = TINY + ["--epochs", "1", "--optimizer", "code", "--output", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    protocol = result["protocol"]
    assert protocol["optimizer"] == "code"
    assert protocol["weight_decay"] == 1e-4 and protocol["max_grad_norm"] == 1.0
    # Every metric is reported left-to-right, right-to-left and as their mean.
    metrics = result["metrics"]
    for name in ("cosine", "csls"):
        l2r, r2l = metrics[name], metrics[f"{name}_r2l"]
        assert metrics[f"{name}_mean"]["mrr"] == pytest.approx(
            (l2r["mrr"] + r2l["mrr"]) / 2
        )


def test_a_run_leaves_the_callers_random_state_alone(tmp_path):
    from almea_pyg.pipeline.experiment import ExperimentConfig, run_experiment

    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    run_experiment(ExperimentConfig(epochs=1, model={"dim": 8}, progress=False))
    assert torch.equal(torch.rand(3), expected)


def test_own_kgs_by_path_with_a_human_round_trip(tmp_path, capsys):
    from almea_pyg.data import write_synthetic_tsv

    kgs = write_synthetic_tsv(tmp_path / "kgs", num_entities=200)
    run = tmp_path / "run"
    argv = ["train", "--data", str(kgs), "--epochs", "2", "--dim", "8"]
    argv += ["--rounds", "1", "--budget", "6", "--oracle", "human"]
    assert main(argv + ["--no-progress", "--output", str(run)]) == 0
    labels = run / "labels_round1.csv"
    assert f"labels requested in {labels}" in capsys.readouterr().out
    truth = {tuple(line.split("\t")) for line in kgs.joinpath("links.tsv").open()}
    truth = {(s, t.strip()) for s, t in truth}
    rows = _rows(labels)
    with open(labels, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            match = (row["source_id"], row["target_id"]) in truth
            writer.writerow({**row, "label": "yes" if match else "no"})
    assert main(["label", "import", str(labels), "--run", str(run)]) == 0
    assert main(["train", "--resume", "--output", str(run), "--no-progress"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "done" and result["rounds"][1]["asked"] == len(rows)
    assert result["protocol"]["dataset"] == "kgs"
    assert result["protocol"]["data"] == f"tsv layout read from {kgs}"
    assert main(["evaluate", str(run), "--metric", "csls"]) == 0


def test_an_unknown_layout_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a KG")
    assert main(TINY + ["--data", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("almea-pyg: error:") and "mmkb" in err and "openea" in err


@pytest.mark.real_data
def test_dbp15k_by_name_and_by_path(dbp15k_dir, tmp_path, capsys):
    argv = TINY + ["--epochs", "1", "--seed-ratio", "0.3"]
    by_name = argv + ["--dataset", "DBP15K_zh_en", "--data-dir", str(dbp15k_dir)]
    assert main(by_name + ["--cache-dir", str(tmp_path / "cache")]) == 0
    by_path = argv + ["--data", str(dbp15k_dir / "zh_en")]
    assert main(by_path + ["--output", str(tmp_path / "run")]) == 0
    protocol = json.loads((tmp_path / "run" / "result.json").read_text())["protocol"]
    assert protocol["train_links"] + protocol["test_links"] == 15000


def test_the_linear_imputer_from_the_command_line(tmp_path):
    # it imputes for the base model, which has no LSL
    argv = ["train", "--epochs", "1", "--dim", "8", "--no-progress"]
    argv += ["--variant", "base", "--impute", "--imputer", "linear"]
    assert main(argv + ["--output", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["config"]["model"] == {
        "dim": 8,
        "impute_missing": True,
        "imputer": "linear",
    }
    protocol = result["protocol"]
    assert (protocol["impute_missing"], protocol["imputer"]) == (True, "linear")
    assert "csls_impute_false" in result["metrics"]
    fit = result["imputer_fit"]
    assert set(fit) == {"graph", "attr", "img", "rel"}
    assert all(-1 < row["heldout_r2"] < 1 for row in fit.values())
    with pytest.raises(SystemExit):
        main(["train", "--imputer", "knn"])


def print_config(argv, capsys):
    assert main(["train", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_typed_options_override_the_config_file_and_only_they(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps(
            {
                "seed": 3,
                "seed_ratio": 0.3,
                "epochs": 7,
                "model": {"dim": 8, "impute_missing": True},
                "active": {"rounds": 2, "strategy_kwargs": {"alpha": 0.2}},
            }
        )
    )
    from_file = print_config(["--config", str(path)], capsys)
    assert from_file["seed"] == 3 and from_file["seed_ratio"] == 0.3
    assert from_file["model"] == {"dim": 8, "impute_missing": True}
    assert from_file["active"]["rounds"] == 2
    # a typed option wins, also when it types the default value
    typed = ["--seed", "0", "--dim", "16", "--alpha", "0.5", "--budget", "4"]
    config = print_config(["--config", str(path), *typed], capsys)
    assert config["seed"] == 0 and config["seed_ratio"] == 0.3 and config["epochs"] == 7
    assert config["model"] == {"dim": 16, "impute_missing": True}
    assert config["active"]["strategy_kwargs"] == {"alpha": 0.5}
    assert config["active"]["budget"] == 4 and config["active"]["rounds"] == 2
    off = print_config(["--config", str(path), "--rounds", "0"], capsys)
    assert off["active"] is None
    named = print_config(["--config", str(path), "--dataset", "FB15K_DB15K"], capsys)
    assert named["dataset"] == "FB15K_DB15K" and named["data"] is None
    removal = {"drop_modality": "attr", "drop_fraction": 0.4, "fill": "mean"}
    path.write_text(json.dumps(removal))
    assert print_config(["--config", str(path)], capsys).items() >= removal.items()
    typed = ["--drop-fraction", "0.6", "--fill", "zero"]
    config = print_config(["--config", str(path), *typed], capsys)
    assert (config["drop_modality"], config["drop_fraction"]) == ("attr", 0.6)
    assert config["fill"] == "zero"


def test_round_learning_rate_options_reach_the_active_config(capsys):
    config = print_config(
        ["--rounds", "2", "--lr-decay", "0.5", "--rewarmup", "3"], capsys
    )
    assert config["active"]["lr_decay"] == 0.5 and config["active"]["rewarmup"] == 3
    default = print_config(["--rounds", "2"], capsys)["active"]
    assert default["lr_decay"] == 1.0 and default["rewarmup"] == 0


def test_active_learning_defaults_follow_the_scarce_label_measurement(capsys):
    def active(*argv):
        return print_config(["--rounds", "1", *argv], capsys)["active"]

    default = active()
    assert (default["strategy"], default["question"]) == ("ds3", "entity")
    assert default["strategy_kwargs"] == {"lam_rule": "relative", "alpha": 0.02}
    assert active("--alpha", "0.1")["strategy_kwargs"]["alpha"] == 0.1
    # a rule typed alone takes its own α; the paper's is Table 9's
    assert active("--lam-rule", "paper")["strategy_kwargs"] == {"lam_rule": "paper"}
    code = active("--lam-rule", "code", "--alpha", "0.5")["strategy_kwargs"]
    assert code == {"lam_rule": "code", "alpha": 0.5}
    assert active("--strategy", "random")["strategy_kwargs"] == {}
    large = active("--prune", "0.1", "--block-size", "2000")["strategy_kwargs"]
    assert large == {
        "lam_rule": "relative",
        "alpha": 0.02,
        "prune": 0.1,
        "block_size": 2000,
    }
    with pytest.raises(SystemExit):
        active("--prune", "0")
    assert active("--question", "pair")["question"] == "pair"
    # DS3's options typed for a strategy without them: an error, before training
    argv = ["train", "--rounds", "1", "--strategy", "random", "--alpha", "0.1"]
    assert main([*argv, "--print-config"]) == 2
    assert "--alpha: not an option of strategy 'random'" in capsys.readouterr().err
    # the library's own default stays the paper's, for reproduction
    from almea_pyg.active.loop import ActiveLearningConfig

    assert ActiveLearningConfig().question == "pair"
    assert ActiveLearningConfig().strategy_kwargs == {}


def test_print_config_is_a_config_file(tmp_path, capsys):
    argv = ["--epochs", "2", "--dim", "8", "--rounds", "1", "--seed", "4"]
    printed = print_config(argv, capsys)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(printed))
    assert print_config(["--config", str(path)], capsys) == printed
    assert not list(tmp_path.glob("*.csv"))  # nothing trained


def test_a_run_from_a_config_file_records_it_and_resumes(tmp_path, monkeypatch):
    settings = {"epochs": 4, "seed": 1, "model": {"dim": 8}, "checkpoint_every": 2}
    settings["progress"] = False
    path = tmp_path / "run.toml"
    path.write_text(
        "epochs = 4\nseed = 1\ncheckpoint_every = 2\nprogress = false\n\n"
        "[model]\ndim = 8\n"
    )
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    flags = TINY + ["--epochs", "4", "--seed", "1", "--checkpoint-every", "2"]
    assert main(flags + ["--output", str(straight)]) == 0
    with monkeypatch.context() as patch:
        kill_at_epoch(patch, 3)
        with pytest.raises(Killed):
            main(["train", "--config", str(path), "--output", str(killed)])
    run = json.loads((killed / "run.json").read_text())
    assert run["status"] == "running"
    assert {k: run["config"][k] for k in settings} == settings
    # the same settings from a file or from flags: the same run
    expected_run = json.loads((straight / "run.json").read_text())
    assert run["fingerprint"]["config"] == expected_run["fingerprint"]["config"]
    assert main(["train", "--resume", "--output", str(killed), "--no-progress"]) == 0
    resumed = json.loads((killed / "result.json").read_text())
    expected = json.loads((straight / "result.json").read_text())
    assert resumed["metrics"] == expected["metrics"]
    assert resumed["config"]["epochs"] == 4 and resumed["config"]["seed"] == 1


@pytest.mark.parametrize(
    "text, extra, message",
    [
        ('{"epoch": 3}', [], "unknown key 'epoch': valid ones are dataset, data,"),
        ("{}", ["--resume", "--output", "x"], "--resume continues a run with its own"),
    ],
)
def test_config_file_errors_are_one_line(tmp_path, capsys, text, extra, message):
    path = tmp_path / "run.json"
    path.write_text(text)
    assert main(["train", "--config", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("almea-pyg: error:") and message in err
    assert err.count("\n") == 1


def test_a_missing_yaml_reader_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "yaml", None)
    (tmp_path / "run.yaml").write_text("epochs: 2\n")
    assert main(["train", "--config", str(tmp_path / "run.yaml")]) == 2
    err = capsys.readouterr().err
    assert "needs PyYAML: pip install 'almea-pyg[config]'" in err


def test_sparse_table_reaches_the_model_options():
    parse = build_parser().parse_args
    argv = ["train", "--dataset", "synthetic", "--fanouts", "5", "5"]
    assert config_from_args(parse([*argv, "--sparse-table"])).model["sparse"] is True
    assert "sparse" not in config_from_args(parse(argv)).model
