import importlib.util
import json
import logging
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
VARIANTS = ["almea", "no_img", "almea+ds3", "almea+ds3+pseudo"]


@pytest.fixture(scope="module")
def acc():
    spec = importlib.util.spec_from_file_location("benchmarks_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def untimed(rounds):
    """Round records without the selection time (the rest is deterministic)."""
    return [{k: v for k, v in r.items() if k != "select_seconds"} for r in rounds]


def grid_argv(results, work, variants=VARIANTS, *extra):
    return [
        "--datasets", "synthetic", "--variants", *variants, "--seeds", "0",
        "--epochs", "2", "--dim", "16", "--rounds", "1", "--interval", "1",
        "--results", str(results), "--work-dir", str(work),
        "--no-progress", "--threads", "1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def grid(acc, tmp_path_factory):
    """The four-variant grid on the synthetic pair, run in this process."""
    root = tmp_path_factory.mktemp("accuracy")
    results, work = root / "results", root / "work"
    threads = torch.get_num_threads()
    try:
        assert acc.main(grid_argv(results, work, VARIANTS, "--in-process")) == 0
    finally:
        torch.set_num_threads(threads)
    records = {}
    for path in results.glob("*.json"):
        record = json.loads(path.read_text())
        records[record["cell"]["variant"]] = (path, record)
    return results, work, records


def test_cell_json_matches_its_cell(acc, grid):
    results, work, records = grid
    assert sorted(records) == sorted(VARIANTS)
    for variant, (path, record) in records.items():
        cell = acc.Cell(**record["cell"])
        assert cell.variant == variant and path.name == f"{cell.name}.json"
        protocol = record["protocol"]
        assert protocol["dataset"] == "synthetic" and protocol["seed"] == 0
        assert protocol["seed_ratio"] == 0.2 and protocol["warmup_epochs"] == 2
        assert record["metrics"]["csls"]["hits@1"] >= 0
        assert record["timing"]["seconds_per_epoch_median"] > 0
        assert "--variants" in record["command"]
        assert set(record["latent_diagnostics"]) == set(protocol["modalities"])
        # the run directory (checkpoint, links, plots) stays out of --results
        assert (work / cell.name / "checkpoint.pt").exists()
    assert all(p.suffix == ".json" for p in results.iterdir())


def test_model_variants_and_modality_ablation(grid):
    records = grid[2]
    assert records["almea"][1]["protocol"]["modalities"] == [
        "graph",
        "attr",
        "img",
        "rel",
    ]
    assert records["no_img"][1]["protocol"]["modalities"] == ["graph", "attr", "rel"]
    assert records["no_img"][1]["protocol"]["active_learning"] is False


@pytest.mark.parametrize(
    "variant, oracle, in_pool",
    [("almea+ds3", "simulated", False), ("almea+ds3+pseudo", "pseudo", True)],
)
def test_active_learning_variants(grid, variant, oracle, in_pool):
    record = grid[2][variant][1]
    protocol = record["protocol"]
    assert protocol["active_learning"] is True and protocol["strategy"] == "ds3"
    assert protocol["oracle"] == oracle and protocol["test_links_in_pool"] is in_pool
    assert protocol["rounds"] == 1 and protocol["epochs"] == 3
    assert [r["round"] for r in record["rounds"]] == [0, 1]
    assert record["config"]["active"]["strategy_kwargs"] == {}  # no Table 9 alpha
    assert record["cell"]["rounds"] == 1 and record["cell"]["interval"] == 1


def test_active_cells_warm_start_from_the_run_without_active_learning(
    acc, grid, tmp_path
):
    # The warm-up is the same run: taking it from the almea cell's checkpoint
    # gives exactly what training it again gives.
    records = grid[2]
    warm = records["almea+ds3"][1]
    assert warm["warm_start"] == acc.Cell(**records["almea"][1]["cell"]).name
    assert warm["resumed"] is False
    assert records["almea"][1]["warm_start"] is None
    results, work = tmp_path / "results", tmp_path / "work"
    argv = grid_argv(results, work, ["almea+ds3"], "--in-process", "--no-warm-start")
    threads = torch.get_num_threads()
    try:
        assert acc.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    (cold,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert cold["warm_start"] is None
    assert untimed(cold["rounds"]) == untimed(warm["rounds"])
    assert cold["metrics"] == warm["metrics"]


def test_pool_ratio_cells_warm_start_from_the_run_without_a_pool(acc, grid, tmp_path):
    # A pool ratio leaves the seeds unchanged, so the warm-up trained without a
    # pool (the grid's almea cell) is the warm-up of a pool-ratio cell: taking
    # it gives exactly what training it at that pool ratio gives.
    _, work, records = grid
    variants = ["almea", "almea+ds3"]
    threads = torch.get_num_threads()
    runs = {}
    try:
        for mode, extra in (("warm", ()), ("cold", ("--no-warm-start",))):
            results = tmp_path / mode
            cells = work if mode == "warm" else tmp_path / "cold-work"
            argv = grid_argv(results, cells, variants, "--in-process", *extra)
            assert acc.main([*argv, "--pool-ratio", "0.3"]) == 0
            runs[mode] = {
                r["cell"]["variant"]: r
                for r in (json.loads(p.read_text()) for p in results.glob("*.json"))
            }
    finally:
        torch.set_num_threads(threads)
    no_pool = acc.Cell(**records["almea"][1]["cell"]).name
    assert runs["warm"]["almea"]["warm_start"] == no_pool
    # Their copied epochs were evaluated on the test links of pool ratio 0, also
    # when copied from a run that had copied them.
    for variant in variants:
        assert runs["warm"][variant]["warm_start_pool_ratio"] == 0.0
    assert runs["warm"]["almea+ds3"]["warm_start"] in (
        no_pool,
        acc.Cell(**runs["warm"]["almea"]["cell"]).name,
    )
    for variant in variants:
        warm, cold = runs["warm"][variant], runs["cold"][variant]
        assert cold["warm_start"] is None
        assert cold["warm_start_pool_ratio"] is None
        assert warm["protocol"]["pool_ratio"] == 0.3
        assert (
            warm["protocol"]["test_links"]
            < records["almea"][1]["protocol"]["test_links"]
        )
        assert untimed(warm["rounds"]) == untimed(cold["rounds"])
        assert warm["metrics"] == cold["metrics"]


def test_rerun_skips_done_cells(acc, grid, monkeypatch, caplog):
    results, work, _ = grid

    def fail(*args, **kwargs):
        raise AssertionError("run_experiment called for a done cell")

    monkeypatch.setattr(acc.experiment, "run_experiment", fail)
    caplog.set_level(logging.INFO, logger="benchmarks.accuracy")
    assert acc.main(grid_argv(results, work, VARIANTS, "--in-process")) == 0
    assert sum("skip" in m and ": done" in m for m in caplog.messages) == 4


def test_interrupted_cell_resumes_from_checkpoint(acc, grid, monkeypatch):
    results, work, records = grid
    path, before = records["almea+ds3"]
    path.unlink()  # as if interrupted after its last checkpoint
    calls = []
    run_experiment = acc.experiment.run_experiment

    def spy(config, *, resume=False, **kwargs):
        calls.append(resume)
        return run_experiment(config, resume=resume, **kwargs)

    monkeypatch.setattr(acc.experiment, "run_experiment", spy)
    threads = torch.get_num_threads()
    try:
        argv = grid_argv(results, work, ["almea+ds3"], "--in-process")
        assert acc.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    after = json.loads(path.read_text())
    assert calls == [True] and after["resumed"] is True
    assert after["rounds"] == before["rounds"]
    assert after["metrics"]["csls"] == pytest.approx(before["metrics"]["csls"])


def test_stored_key_mismatch_is_refused(acc, tmp_path, monkeypatch, capsys):
    cell = acc.Cell("synthetic", 0.2, "almea", 0, 2, 16)
    (tmp_path / f"{cell.name}.json").write_text(json.dumps({"cell": {"seed": 9}}))
    monkeypatch.setattr(acc.experiment, "run_experiment", None)
    argv = grid_argv(tmp_path, tmp_path / "w", ["almea"], "--in-process")
    assert acc.main(argv) == 2
    assert "move it away" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["bogus", "almea+magic", "no_video"])
def test_unknown_variant_fails_before_training(
    acc, tmp_path, monkeypatch, capsys, variant
):
    monkeypatch.setattr(acc.experiment, "run_experiment", None)
    argv = grid_argv(tmp_path, tmp_path, ["almea", variant], "--in-process")
    assert acc.main(argv) == 2
    err = capsys.readouterr().err
    assert variant in err
    assert ("almea+ds3" in err) or ("has no modality" in err)
    assert not list(tmp_path.glob("*.json"))


def test_variant_table_covers_models_and_strategies(acc):
    from almea_pyg.pipeline.experiment import VARIANTS as MODEL_VARIANTS
    from almea_pyg.select import STRATEGIES

    table = acc.HARNESS_VARIANTS
    assert set(MODEL_VARIANTS) <= set(table)
    assert {f"almea+{s}" for s in STRATEGIES} <= set(table)
    assert table["base"].model == "base" and table["no_rel"].drop == "rel"
    pseudo = table["almea+ds3+pseudo"]
    assert (pseudo.oracle, pseudo.transductive) == ("pseudo", True)
    assert table["almea+random"].oracle == "simulated"
    assert not table["almea+random"].transductive


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35),
            "FB15K_DB15K-r0.2-almea+ds3-e500-s0",
        ),
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.5),
            "FB15K_DB15K-r0.2-almea+ds3-e500-a0.5-s0",
        ),
        (
            dict(rounds=1, interval=50, budget=0.01, alpha=0.35),
            "FB15K_DB15K-r0.2-almea+ds3-e500-R1-i50-b0.01-s0",
        ),
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35, prune=0.5),
            "FB15K_DB15K-r0.2-almea+ds3-e500-pr0.5-s0",
        ),
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35, max_grad_norm=1.0),
            "FB15K_DB15K-r0.2-almea+ds3-e500-g1-s0",
        ),
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35, optimizer="code"),
            "FB15K_DB15K-r0.2-almea+ds3-e500-optcode-s0",
        ),
    ],
)
def test_cell_names(acc, kwargs, name):
    cell = acc.Cell("FB15K_DB15K", 0.2, "almea+ds3", 0, 500, **kwargs)
    assert cell.name == name
    assert cell.paper_schedule() is (name == "FB15K_DB15K-r0.2-almea+ds3-e500-s0")


def test_child_process_cell(acc, tmp_path):
    argv = grid_argv(tmp_path / "r", tmp_path / "w", ["almea"])
    argv[argv.index("--epochs") + 1] = "1"
    assert acc.main(argv) == 0
    (path,) = (tmp_path / "r").glob("*.json")
    record = json.loads(path.read_text())
    assert record["cell"]["epochs"] == 1 and record["protocol"]["epochs"] == 1
    assert record["timing"]["threads"] == 1


def write_cell(
    acc, results, variant, seed, metrics, *, dataset="synthetic", **schedule
):
    epochs = 500 if dataset == "FB15K_DB15K" else 2
    rounds = schedule.pop("round_results", [])
    cell = acc.Cell(dataset, 0.2, variant, seed, epochs, **schedule)
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


def test_summarise_mean_std_and_paired_t_test(acc, tmp_path, capsys):
    # MRR: almea 10, 20, 30 and base 9, 18, 26 -> differences 1, 2, 4
    for seed, (a, b) in enumerate([(10, 9), (20, 18), (30, 26)]):
        write_cell(acc, tmp_path, "almea", seed, (a / 2, a + 5, a))
        write_cell(acc, tmp_path, "base", seed, (b / 2, b + 5, b))
    write_cell(acc, tmp_path, "no_lsc", 0, (1.0, 2.0, 3.0))
    write_cell(acc, tmp_path, "almea", 0, (40.0, 70.0, 50.0), dataset="FB15K_DB15K")
    (tmp_path / "notes.json").write_text("{}")  # not a cell: ignored
    argv = ["--summarise", "--results", str(tmp_path), "--compare", "almea", "base"]
    assert acc.main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "summary.md").read_text() == out
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
    assert "3.00 ± -" in out
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
    assert "Paired t-tests" in out


def test_summarise_keeps_clipped_cells_apart(acc, tmp_path, capsys):
    for seed in (0, 1):
        write_cell(acc, tmp_path, "almea", seed, (10.0, 20.0, 15.0 + seed))
        write_cell(acc, tmp_path, "base", seed, (10.0, 20.0, 14.0))
    write_cell(acc, tmp_path, "almea", 0, (1.0, 2.0, 3.0), max_grad_norm=50.0)
    argv = ["--summarise", "--results", str(tmp_path), "--compare", "almea", "base"]
    assert acc.main(argv) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    clipped = [r for r in rows if r.get("max_grad_norm") == 50.0]
    assert len(rows) == 3 and len(clipped) == 1 and clipped[0]["n"] == 1
    assert out.count("almea clip50") == 1
    (test,) = json.loads((tmp_path / "summary.json").read_text())["comparisons"]
    assert test["n"] == 2 and test["mrr"]["mean_diff"] == pytest.approx(1.5)


def test_summarise_keeps_pool_ratios_apart_and_counts_what_the_oracle_saw(
    acc, tmp_path, capsys
):
    schedule = dict(rounds=2, interval=1, budget=0.01, pool_ratio=0.1)
    for seed in (0, 1):
        write_cell(acc, tmp_path, "almea", seed, (10.0, 20.0, 30.0 + seed))
        write_cell(acc, tmp_path, "almea", seed, (11.0, 21.0, 31.0), pool_ratio=0.1)
        rounds = [{"asked": 0, "correct": 0, "mrr": 30.0 + seed}]
        rounds.append({"asked": 8, "correct": 3 + seed, "mrr": 32.0})
        rounds.append({"asked": 6, "correct": 5, "mrr": 33.0 + 2 * seed})
        write_cell(
            acc, tmp_path, "almea+ds3", seed, (12.0 + seed, 22.0, 33.0 + 2 * seed),
            round_results=rounds, **schedule,
        )  # fmt: skip
    argv = ["--summarise", "--results", str(tmp_path), "--compare", "almea+ds3"]
    assert acc.main([*argv, "almea"]) == 0
    out = capsys.readouterr().out
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
    assert "| almea+ds3 | almea | synthetic | 0.2 | 0.1 | 2 | 2 | 3.00 |" in out


def test_summarise_cosine_metric(acc, tmp_path, capsys):
    for seed in (0, 1):
        write_cell(acc, tmp_path, "almea", seed, (10.0 + seed, 20.0, 30.0))
    argv = ["--summarise", "--results", str(tmp_path), "--metric", "cosine"]
    assert acc.main(argv) == 0
    (row,) = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert row["metric"] == "cosine"
    assert row["hits@1"]["mean"] == pytest.approx(9.5)


def test_prune_reaches_ds3_cells_only(acc):
    args = acc.build_parser().parse_args(
        ["--datasets", "FB15K_DB15K", "--variants", "almea+ds3", "almea+random"]
        + ["--seeds", "0", "--prune", "0.5"]
    )
    ds3, random = acc.build_cells(args)
    assert (ds3.prune, random.prune) == (0.5, None)
    assert ds3.key()["prune"] == 0.5 and "prune" not in random.key()
    options = {"data_dir": None, "cache_dir": "data", "eval_every": 0}
    options.update(device="cpu", work_dir="w", progress=False)
    config = acc.experiment_config(ds3, options)
    assert config.active.strategy_kwargs == {"alpha": 0.35, "prune": 0.5}
    assert acc.experiment_config(random, options).active.strategy_kwargs == {}


def test_scarce_label_variants_reach_the_loop(acc):
    args = acc.build_parser().parse_args(
        ["--datasets", "FB15K_DB15K", "--seed-ratios", "0.01", "--pool-ratio", "0.2"]
        + ["--seeds", "0", "--alpha", "0.35", "--variants", "almea+ds3"]
        + ["almea+ds3+relative+entity", "almea+none", "almea+passive"]
        + ["almea+random+entity"]
    )
    options = {"data_dir": None, "cache_dir": "data", "eval_every": 0}
    options.update(device="cpu", work_dir="w", progress=False)
    configs = {
        cell.variant: acc.experiment_config(cell, options).active
        for cell in acc.build_cells(args)
    }
    assert configs["almea+ds3"].strategy_kwargs == {"alpha": 0.35}
    relative = configs["almea+ds3+relative+entity"]
    assert relative.strategy_kwargs == {
        "alpha": acc.RELATIVE_ALPHA,
        "lam_rule": "relative",
    }
    assert (relative.strategy, relative.question) == ("ds3", "entity")
    assert configs["almea+random+entity"].question == "entity"
    assert configs["almea+none"].strategy == "none"
    assert configs["almea+passive"].strategy == "passive"


@pytest.mark.parametrize("low_resource", [False, True])
def test_max_grad_norm_reaches_every_cell_and_its_config(acc, low_resource):
    argv = ["--datasets", "FB15K_DB15K", "--variants", "almea+ds3", "--seeds", "0"]
    argv += ["--low-resource"] if low_resource else []
    clipped = acc.build_cells(
        acc.build_parser().parse_args(argv + ["--max-grad-norm", "5"])
    )
    plain = acc.build_cells(acc.build_parser().parse_args(argv))
    assert [c.max_grad_norm for c in clipped] == [5.0] * len(plain)
    assert all(c.key()["max_grad_norm"] == 5.0 for c in clipped)
    assert all("max_grad_norm" not in c.key() for c in plain)
    assert not any(c.paper_schedule() for c in clipped)
    assert {c.name for c in clipped}.isdisjoint(c.name for c in plain)
    options = {"data_dir": None, "cache_dir": "data", "eval_every": 0}
    options.update(device="cpu", work_dir="w", progress=False)
    assert acc.experiment_config(clipped[0], options).max_grad_norm == 5.0
    assert acc.experiment_config(plain[0], options).max_grad_norm is None


def test_low_resource_cells_share_one_test_set(acc):
    args = acc.build_parser().parse_args(
        ["--low-resource", "--datasets", "synthetic", "--variants", "almea+ds3"]
        + ["--seeds", "3", "--epochs", "4"]
    )
    cells = acc.build_cells(args)
    setting = [(c.seed_ratio, c.rounds, c.budget, c.pool_ratio) for c in cells]
    assert setting == [
        (0.2, 0, 0.0, 0.0),
        (0.05, 15, 0.01, 0.15),
        (0.1, 10, 0.01, 0.1),
        (0.15, 5, 0.01, 0.05),
    ]
    assert cells[0].name == "synthetic-r0.2-almea-e4-s3"
    assert len({c.name for c in cells}) == 4
    from almea_pyg.data import make_synthetic_pair

    pair = make_synthetic_pair(num_entities=200, seed=1)
    tests = [
        pair.split(c.seed_ratio, seed=c.seed, pool_ratio=c.pool_ratio).test_links
        for c in cells
    ]
    assert all(torch.equal(t, tests[0]) for t in tests[1:])
    args.variants = ["almea"]
    with pytest.raises(ValueError, match="active-learning"):
        acc.build_cells(args)


def test_optimizer_reaches_every_cell_and_its_config(acc):
    argv = ["--datasets", "FB15K_DB15K", "--variants", "almea", "base"]
    argv += ["--seeds", "0", "--optimizer", "code"]
    cells = acc.build_cells(acc.build_parser().parse_args(argv))
    assert [c.key()["optimizer"] for c in cells] == ["code", "code"]
    assert not any(c.paper_schedule() for c in cells)
    options = {"data_dir": None, "cache_dir": None, "eval_every": 0}
    options.update(device="cpu", work_dir="w", progress=False)
    config = acc.experiment_config(cells[0], options)
    assert config.optimizer_settings() == {"weight_decay": 1e-4, "max_grad_norm": 1.0}
