import csv
import json
import logging
from dataclasses import replace

import pytest
import torch

from almea_pyg.pipeline import experiment, grid
from almea_pyg.pipeline.grid import (
    Cell,
    Grid,
    RunOptions,
    experiment_config,
    is_done,
    run_grid,
    variant_label,
)
from almea_pyg.pipeline.variants import RELATIVE_ALPHA

VARIANTS = ["almea", "no_img", "almea+ds3", "almea+ds3+pseudo"]
COMMAND = ["benchmarks/accuracy.py", "--variants", *VARIANTS]


def untimed(rounds):
    """Round records without the selection time (the rest is deterministic)."""
    return [{k: v for k, v in r.items() if k != "select_seconds"} for r in rounds]


def tiny_grid(variants=VARIANTS, **kwargs):
    """The synthetic pair, seed 0, 2 warm-up epochs, d = 16, 1 round every epoch."""
    settings = dict(datasets=["synthetic"], seeds=[0], epochs=2, dim=16)
    settings.update(rounds=1, interval=1)
    return Grid(variants=list(variants), **{**settings, **kwargs})


def options(results, work, **kwargs):
    return RunOptions(
        results=str(results),
        work_dir=str(work),
        progress=False,
        threads=1,
        command=COMMAND,
        **kwargs,
    )


def run(cells, results, work, **kwargs):
    """``run_grid`` in this process, torch's thread count restored afterwards."""
    threads = torch.get_num_threads()
    try:
        return run_grid(cells, options(results, work, **kwargs), isolate=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ran_grid(tmp_path_factory):
    """The four-variant grid on the synthetic pair, run in this process."""
    root = tmp_path_factory.mktemp("grid")
    results, work = root / "results", root / "work"
    assert run(tiny_grid().cells(), results, work) == 0
    records = {}
    for path in results.glob("*.json"):
        record = json.loads(path.read_text())
        records[record["cell"]["variant"]] = (path, record)
    return results, work, records


def test_cell_json_matches_its_cell(ran_grid):
    results, work, records = ran_grid
    assert sorted(records) == sorted(VARIANTS)
    for variant, (path, record) in records.items():
        cell = Cell(**record["cell"])
        assert cell.variant == variant and path.name == f"{cell.name}.json"
        protocol = record["protocol"]
        assert protocol["dataset"] == "synthetic" and protocol["seed"] == 0
        assert protocol["seed_ratio"] == 0.2 and protocol["warmup_epochs"] == 2
        assert record["metrics"]["csls"]["hits@1"] >= 0
        assert record["timing"]["seconds_per_epoch_median"] > 0
        assert "--variants" in record["command"] and record["command"] == COMMAND
        assert set(record["latent_diagnostics"]) == set(protocol["modalities"])
        # the run directory (checkpoint, links, plots) stays out of the results
        assert (work / cell.name / "checkpoint.pt").exists()
    assert all(p.suffix == ".json" for p in results.iterdir())


def test_model_variants_and_modality_ablation(ran_grid):
    records = ran_grid[2]
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
def test_active_learning_variants(ran_grid, variant, oracle, in_pool):
    record = ran_grid[2][variant][1]
    protocol = record["protocol"]
    assert protocol["active_learning"] is True and protocol["strategy"] == "ds3"
    assert protocol["oracle"] == oracle and protocol["test_links_in_pool"] is in_pool
    assert protocol["rounds"] == 1 and protocol["epochs"] == 3
    assert [r["round"] for r in record["rounds"]] == [0, 1]
    assert record["config"]["active"]["strategy_kwargs"] == {}  # no Table 9 alpha
    assert record["cell"]["rounds"] == 1 and record["cell"]["interval"] == 1


def test_active_cells_warm_start_from_the_run_without_active_learning(
    ran_grid, tmp_path
):
    # The warm-up is the same run: taking it from the almea cell's checkpoint
    # gives exactly what training it again gives.
    records = ran_grid[2]
    warm = records["almea+ds3"][1]
    assert warm["warm_start"] == Cell(**records["almea"][1]["cell"]).name
    assert warm["resumed"] is False
    assert records["almea"][1]["warm_start"] is None
    results, work = tmp_path / "results", tmp_path / "work"
    cells = tiny_grid(["almea+ds3"]).cells()
    assert run(cells, results, work, warm_start=False) == 0
    (cold,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert cold["warm_start"] is None
    assert untimed(cold["rounds"]) == untimed(warm["rounds"])
    assert cold["metrics"] == warm["metrics"]


def test_round_lr_options_act_after_the_shared_warm_up(ran_grid, tmp_path):
    # They change the rounds only: the cell starts from the same warm-up, its
    # key and protocol state them, and the rounds' epochs train at that rate.
    _, work, records = ran_grid
    cells = tiny_grid(["almea", "almea+ds3"], lr_decay=0.5, rewarmup=1).cells()
    plain, active = cells
    assert plain == Cell(**records["almea"][1]["cell"])  # the rate of no round
    assert active.key()["lr_decay"] == 0.5 and active.key()["rewarmup"] == 1
    assert "lr_decay" not in plain.key() and "rewarmup" not in plain.key()
    settings = experiment_config(active, CONFIG_ONLY).active
    assert (settings.lr_decay, settings.rewarmup) == (0.5, 1)
    results = tmp_path / "results"
    assert run([active], results, work) == 0
    (record,) = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert record["warm_start"] == plain.name
    assert record["protocol"]["round_lr_decay"] == 0.5
    assert record["protocol"]["round_rewarmup"] == 1
    with open(work / active.name / "log.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]
    assert lrs == pytest.approx([1e-3, 1e-3, 2.5e-4])


def test_pool_ratio_cells_warm_start_from_the_run_without_a_pool(ran_grid, tmp_path):
    # A pool ratio leaves the seeds unchanged, so the warm-up trained without a
    # pool (the grid's almea cell) is the warm-up of a pool-ratio cell: taking
    # it gives exactly what training it at that pool ratio gives.
    _, work, records = ran_grid
    variants = ["almea", "almea+ds3"]
    runs = {}
    for mode, warm_start in (("warm", True), ("cold", False)):
        results = tmp_path / mode
        cells = work if mode == "warm" else tmp_path / "cold-work"
        grid_cells = tiny_grid(variants, pool_ratio=0.3).cells()
        assert run(grid_cells, results, cells, warm_start=warm_start) == 0
        runs[mode] = {
            r["cell"]["variant"]: r
            for r in (json.loads(p.read_text()) for p in results.glob("*.json"))
        }
    no_pool = Cell(**records["almea"][1]["cell"]).name
    assert runs["warm"]["almea"]["warm_start"] == no_pool
    # Their copied epochs were evaluated on the test links of pool ratio 0, also
    # when copied from a run that had copied them.
    for variant in variants:
        assert runs["warm"][variant]["warm_start_pool_ratio"] == 0.0
    assert runs["warm"]["almea+ds3"]["warm_start"] in (
        no_pool,
        Cell(**runs["warm"]["almea"]["cell"]).name,
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


def test_rerun_skips_done_cells(ran_grid, monkeypatch, caplog):
    results, work, _ = ran_grid

    def fail(*args, **kwargs):
        raise AssertionError("run_experiment called for a done cell")

    monkeypatch.setattr(experiment, "run_experiment", fail)
    caplog.set_level(logging.INFO, logger=grid.MODULE)
    assert run(tiny_grid().cells(), results, work) == 0
    assert sum("skip" in m and ": done" in m for m in caplog.messages) == 4


def test_interrupted_cell_resumes_from_checkpoint(ran_grid, monkeypatch):
    results, work, records = ran_grid
    path, before = records["almea+ds3"]
    path.unlink()  # as if interrupted after its last checkpoint
    calls = []
    run_experiment = experiment.run_experiment

    def spy(config, *, resume=False, **kwargs):
        calls.append(resume)
        return run_experiment(config, resume=resume, **kwargs)

    monkeypatch.setattr(experiment, "run_experiment", spy)
    assert run(tiny_grid(["almea+ds3"]).cells(), results, work) == 0
    after = json.loads(path.read_text())
    assert calls == [True] and after["resumed"] is True
    assert after["rounds"] == before["rounds"]
    assert after["metrics"]["csls"] == pytest.approx(before["metrics"]["csls"])


def test_stored_key_mismatch_is_refused(tmp_path, monkeypatch):
    cell = Cell("synthetic", 0.2, "almea", 0, 2, 16)
    (tmp_path / f"{cell.name}.json").write_text(json.dumps({"cell": {"seed": 9}}))
    monkeypatch.setattr(experiment, "run_experiment", None)
    with pytest.raises(ValueError, match="move it away"):
        run(tiny_grid(["almea"]).cells(), tmp_path, tmp_path / "w")
    with pytest.raises(ValueError, match="move it away"):
        is_done(cell, tmp_path)


@pytest.mark.parametrize("variant", ["bogus", "almea+magic", "no_video"])
def test_unknown_variant_fails_before_training(tmp_path, monkeypatch, variant):
    monkeypatch.setattr(experiment, "run_experiment", None)
    with pytest.raises(ValueError) as info:
        run(tiny_grid(["almea", variant]).cells(), tmp_path, tmp_path)
    err = str(info.value)
    assert variant in err
    assert ("almea+ds3" in err) or ("has no modality" in err)
    assert not list(tmp_path.glob("*.json"))


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
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35, lr_decay=0.5),
            "FB15K_DB15K-r0.2-almea+ds3-e500-ld0.5-s0",
        ),
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35, rewarmup=3),
            "FB15K_DB15K-r0.2-almea+ds3-e500-rw3-s0",
        ),
        (
            dict(rounds=5, interval=50, budget=0.01, alpha=0.35, fanouts=(10, 5)),
            "FB15K_DB15K-r0.2-almea+ds3-e500-f10x5-s0",
        ),
    ],
)
def test_cell_names(kwargs, name):
    cell = Cell("FB15K_DB15K", 0.2, "almea+ds3", 0, 500, **kwargs)
    assert cell.name == name
    assert cell.paper_schedule() is (name == "FB15K_DB15K-r0.2-almea+ds3-e500-s0")


def test_child_process_cell(tmp_path):
    cells = tiny_grid(["almea"], epochs=1).cells()
    failed = run_grid(cells, options(tmp_path / "r", tmp_path / "w"), isolate=True)
    assert failed == 0
    (path,) = (tmp_path / "r").glob("*.json")
    record = json.loads(path.read_text())
    assert record["cell"]["epochs"] == 1 and record["protocol"]["epochs"] == 1
    assert record["timing"]["threads"] == 1


def test_a_failing_child_is_counted_not_raised(tmp_path):
    cells = tiny_grid(["almea"], epochs=1).cells()
    bad = options(tmp_path / "r", tmp_path / "w", device="no-such-device")
    assert run_grid(cells, bad, isolate=True) == 1
    assert not list((tmp_path / "r").glob("*.json"))


#: Options of cells that are only configured, never run.
CONFIG_ONLY = RunOptions(results="r", work_dir="w", cache_dir="data", progress=False)


def test_prune_reaches_ds3_cells_only():
    ds3, random = Grid(
        datasets=["FB15K_DB15K"],
        variants=["almea+ds3", "almea+random"],
        seeds=[0],
        prune=0.5,
    ).cells()
    assert (ds3.prune, random.prune) == (0.5, None)
    assert ds3.key()["prune"] == 0.5 and "prune" not in random.key()
    config = experiment_config(ds3, CONFIG_ONLY)
    assert config.active.strategy_kwargs == {"alpha": 0.35, "prune": 0.5}
    assert experiment_config(random, CONFIG_ONLY).active.strategy_kwargs == {}


def test_scarce_label_variants_reach_the_loop():
    cells = Grid(
        datasets=["FB15K_DB15K"],
        seed_ratios=[0.01],
        pool_ratio=0.2,
        seeds=[0],
        alpha=0.35,
        variants=[
            "almea+ds3",
            "almea+ds3+relative+entity",
            "almea+none",
            "almea+passive",
            "almea+random+entity",
        ],
    ).cells()
    configs = {
        cell.variant: experiment_config(cell, CONFIG_ONLY).active for cell in cells
    }
    assert configs["almea+ds3"].strategy_kwargs == {"alpha": 0.35}
    relative = configs["almea+ds3+relative+entity"]
    assert relative.strategy_kwargs == {
        "alpha": RELATIVE_ALPHA,
        "lam_rule": "relative",
    }
    assert (relative.strategy, relative.question) == ("ds3", "entity")
    assert configs["almea+random+entity"].question == "entity"
    assert configs["almea+none"].strategy == "none"
    assert configs["almea+passive"].strategy == "passive"


@pytest.mark.parametrize("low_resource", [False, True])
def test_max_grad_norm_reaches_every_cell_and_its_config(low_resource):
    settings = dict(datasets=["FB15K_DB15K"], variants=["almea+ds3"], seeds=[0])
    settings["low_resource"] = low_resource
    clipped = Grid(**settings, max_grad_norm=5.0).cells()
    plain = Grid(**settings).cells()
    assert [c.max_grad_norm for c in clipped] == [5.0] * len(plain)
    assert all(c.key()["max_grad_norm"] == 5.0 for c in clipped)
    assert all("max_grad_norm" not in c.key() for c in plain)
    assert not any(c.paper_schedule() for c in clipped)
    assert {c.name for c in clipped}.isdisjoint(c.name for c in plain)
    assert experiment_config(clipped[0], CONFIG_ONLY).max_grad_norm == 5.0
    assert experiment_config(plain[0], CONFIG_ONLY).max_grad_norm is None


def test_low_resource_cells_share_one_test_set():
    low = Grid(
        datasets=["synthetic"],
        variants=["almea+ds3"],
        seeds=[3],
        epochs=4,
        low_resource=True,
    )
    cells = low.cells()
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
    low.variants = ["almea"]
    with pytest.raises(ValueError, match="active-learning"):
        low.cells()


def test_optimizer_reaches_every_cell_and_its_config():
    cells = Grid(
        datasets=["FB15K_DB15K"],
        variants=["almea", "base"],
        seeds=[0],
        optimizer="code",
    ).cells()
    assert [c.key()["optimizer"] for c in cells] == ["code", "code"]
    assert not any(c.paper_schedule() for c in cells)
    config = experiment_config(cells[0], RunOptions(results="r", work_dir="w"))
    assert config.optimizer_settings() == {"weight_decay": 1e-4, "max_grad_norm": 1.0}


def test_fanouts_reach_every_cell_key_and_config():
    grid = Grid(datasets=["FB15K_DB15K"], variants=["almea"], seeds=[0])
    (whole,) = grid.cells()
    assert "fanouts" not in whole.key()
    (cell,) = replace(grid, fanouts=[10, 10]).cells()
    assert cell.key()["fanouts"] == [10, 10]
    assert cell.name == "FB15K_DB15K-r0.2-almea-e500-f10x10-s0"
    assert not cell.paper_schedule()
    options = RunOptions(results="r", work_dir="w")
    assert experiment_config(cell, options).fanouts == [10, 10]
    assert experiment_config(whole, options).fanouts is None
    assert "full_forward" not in cell.key()
    (full_forward,) = replace(grid, fanouts=[10, 10], full_forward=True).cells()
    assert full_forward.key()["full_forward"] is True
    assert full_forward.name == "FB15K_DB15K-r0.2-almea-e500-f10x10-ff-s0"
    assert variant_label(full_forward.key()) == "almea fanouts10x10 full-forward"
    assert experiment_config(full_forward, options).full_forward
    assert not experiment_config(cell, options).full_forward
    with pytest.raises(ValueError, match="needs fanouts"):
        replace(grid, full_forward=True).cells()
    assert "full_forward_every" not in full_forward.key()
    (stale,) = replace(
        grid, fanouts=[10, 10], full_forward=True, full_forward_every=4
    ).cells()
    assert stale.key()["full_forward_every"] == 4
    assert stale.name == "FB15K_DB15K-r0.2-almea-e500-f10x10-ff4-s0"
    assert variant_label(stale.key()) == "almea fanouts10x10 full-forward every4"
    assert experiment_config(stale, options).full_forward_every == 4
    assert experiment_config(full_forward, options).full_forward_every == 1
    with pytest.raises(ValueError, match="needs full_forward"):
        replace(grid, fanouts=[10, 10], full_forward_every=4).cells()
