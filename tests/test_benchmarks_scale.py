"""benchmarks/scale.py: the exponent fit and a tiny run of every stage."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_exponent(bench):
    fit = bench.fit_exponent([10, 100, 1000], [3.0, 300.0, 30000.0])
    assert fit["exponent"] == pytest.approx(2.0)
    assert fit["coefficient"] == pytest.approx(0.03)
    assert bench.fit_exponent([10], [1.0]) is None


def test_tiny_run(bench, monkeypatch, tmp_path):
    children = []

    def run_child(cmd, env=None, echo=False):  # the worker here, to stay fast
        children.append(cmd)
        return bench.main(cmd[2:])

    monkeypatch.setattr(bench, "_run_child", run_child)
    out, plot = tmp_path / "scale.json", tmp_path / "scale.png"
    argv = ["--sizes", "400", "800", "--eval-links", "50", "--batch-size", "100"]
    argv += ["--search", "exact", "--block-size", "20", "--fanouts", "5", "5"]
    report = bench.main([*argv, "--out", str(out), "--plot", str(plot)])
    assert json.loads(out.read_text()) == report
    assert [cmd[cmd.index("--worker") + 1] for cmd in children] == ["400", "800"]
    assert "search: exact" in report["protocol"]["evaluation"]
    small, large = report["sizes"]
    for run in (small, large):
        for name in bench.STAGES:
            assert run[name]["seconds"] > 0 and run[name]["peak_rss_mib"] > 0
            assert run[name]["cpu_seconds"] > 0
        assert run["train"]["seconds_per_epoch"] > 0
        subgraph = run["train"]["subgraph"]  # batches of 100 links, fan-outs 5, 5
        assert subgraph["batches"] == min(3, -(-run["sizes"]["train_links"] // 100))
        assert 100 < subgraph["nodes"] <= 2 * 100 * (1 + 5 + 25)
        assert 0 < subgraph["edges"] <= 2 * 100 * (5 + 25)
        assert 0 <= run["evaluation"]["metrics"]["mrr"] <= 100
        assert run["selection"]["selected"] <= run["selection"]["budget"]
        assert run["selection"]["pool"] > 20  # split into blocks of 20
        assert run["selection"]["blocks"] > 1
        assert 1 <= run["selection"]["admm_iterations"] <= 1000
        assert isinstance(run["selection"]["converged"], bool)
        parts = run["selection"]["search_seconds"] + run["selection"]["ds3_seconds"]
        assert 0 < parts <= run["selection"]["seconds"]
        assert run["selection"]["ds3_cpu_seconds"] > 0
        assert run["search"] == "exact"
    assert large["sizes"]["entities"][0] > small["sizes"]["entities"][0]
    assert set(report["fit"]) >= {f"{name}_seconds" for name in bench.STAGES}
    # the exponent of two tiny sizes is timing noise: only that it was fitted
    assert all(math.isfinite(fit["exponent"]) for fit in report["fit"].values())
    assert plot.stat().st_size > 0


def _done_size(bench, n):
    """A size's record as a finished run leaves it, every stage at 1 s."""
    stage = {"seconds": 1.0, "peak_rss_mib": 100.0}
    done = {"n": n, **{name: stage for name in bench.STAGES}}
    done["train"] = {**stage, "seconds_per_epoch": 1.0}
    return done


def test_keep_reuses_the_sizes_done(bench, monkeypatch, tmp_path):
    out = tmp_path / "scale.json"
    done = _done_size(bench, 400)
    out.write_text(json.dumps({"sizes": [done, {"n": 800, "failed": "killed"}]}))
    children = []

    def run_child(cmd, env=None, echo=False):  # records what would run; runs nothing
        children.append(int(cmd[cmd.index("--worker") + 1]))
        return {"failed": "not run in this test"}

    monkeypatch.setattr(bench, "_run_child", run_child)
    argv = ["--sizes", "800", "400", "--keep", "--out", str(out)]
    argv += ["--plot", str(tmp_path / "scale.png")]
    report = bench.main(argv)
    assert children == [800]  # a failed size runs again
    assert [run["n"] for run in report["sizes"]] == [400, 800]
    assert report["sizes"][0] == done  # a size without a record searched flat
    children.clear()
    out.write_text(json.dumps({"sizes": [done]}))
    bench.main([*argv, "--faiss-index", "ivf"])
    assert children == [800, 400]  # searched otherwise: runs again
    children.clear()
    bench.main([*argv, "--prune", "0.5"])
    assert children == [800, 400]  # pruned otherwise: runs again


def test_the_plot_goes_beside_an_out_elsewhere(bench, monkeypatch, tmp_path):
    out = tmp_path / "scale.json"
    done = _done_size(bench, 400)
    out.write_text(json.dumps({"sizes": [done]}))
    monkeypatch.setattr(bench, "PLOT", tmp_path / "docs.png")
    bench.main(["--sizes", "400", "--keep", "--out", str(out)])
    assert (tmp_path / "scale.png").stat().st_size > 0
    assert not (tmp_path / "docs.png").exists()


def test_a_failed_size_keeps_the_stages_it_finished(bench, monkeypatch, tmp_path):
    def no_selection(*args, **kwargs):
        raise MemoryError("killed in selection")

    def run_child(cmd, env=None, echo=False):  # the worker here, failing late
        try:
            return bench.main(cmd[2:])
        except MemoryError as error:
            return {"failed": "worker exited with status 1", "stderr_tail": str(error)}

    monkeypatch.setattr(bench, "_run_child", run_child)
    monkeypatch.setattr(bench, "ds3_acquire", no_selection)
    out = tmp_path / "scale.json"
    argv = ["--sizes", "400", "--eval-links", "50", "--batch-size", "100"]
    argv += ["--search", "exact", "--fanouts", "5", "5", "--out", str(out)]
    report = bench.main([*argv, "--plot", str(tmp_path / "scale.png")])
    (run,) = report["sizes"]
    assert run["n"] == 400 and run["stderr_tail"] == "killed in selection"
    for name in ("data", "train", "embed", "evaluation"):
        assert run[name]["seconds"] > 0
    assert "selection" not in run and run["sizes"]["links"] > 0
    assert bench.ran_through(report["sizes"]) == []
    assert list(tmp_path.glob("*.partial.json")) == []


def test_until_runs_the_first_stages_only(bench, monkeypatch, tmp_path):
    monkeypatch.setattr(
        bench, "_run_child", lambda cmd, env=None, echo=False: bench.main(cmd[2:])
    )
    out = tmp_path / "scale.json"
    argv = ["--sizes", "300", "500", "--batch-size", "100", "--fanouts", "5", "5"]
    argv += ["--until", "train", "--out", str(out)]
    report = bench.main([*argv, "--plot", str(tmp_path / "scale.png")])
    for run in report["sizes"]:
        assert {"data", "train"} <= set(run) and "embed" not in run
        assert run["train"]["seconds_per_epoch"] > 0
    assert report["fit"]["train_seconds_per_epoch"] is not None
    assert report["fit"]["embed_seconds"] is None
    assert "up to train" in report["protocol"]["stages"]
    assert (tmp_path / "scale.png").stat().st_size > 0
    assert "whole-graph forward" not in report["protocol"]["train"]
    assert not any(run["full_forward"] for run in report["sizes"])
    argv = [*argv[:-1], str(tmp_path / "ff.json"), "--full-forward"]
    report = bench.main([*argv, "--plot", str(tmp_path / "ff.png")])
    assert "whole-graph forward values" in report["protocol"]["train"]
    assert "a pass every" not in report["protocol"]["train"]
    assert all(run["full_forward"] for run in report["sizes"])
    argv = [*argv[:-2], str(tmp_path / "ff3.json"), "--full-forward"]
    argv += ["--full-forward-every", "3", "--sizes", "300"]
    report = bench.main([*argv, "--plot", str(tmp_path / "ff3.png")])
    assert "(a pass every 3 steps)" in report["protocol"]["train"]
    assert [run["full_forward_every"] for run in report["sizes"]] == [3]
    assert "sparse" not in report["protocol"]["train"]
    assert not any(run["sparse"] for run in report["sizes"])
    sparse = out.with_name("sparse.json")
    sparse.write_text(out.read_text())  # a dense 300 that --keep must not take
    argv = ["--sizes", "300", "--batch-size", "100", "--fanouts", "5", "5"]
    argv += ["--until", "train", "--out", str(sparse), "--sparse", "--keep"]
    report = bench.main([*argv, "--plot", str(tmp_path / "sparse.png")])
    assert "sparse entity-table gradients" in report["protocol"]["train"]
    assert [run["sparse"] for run in report["sizes"]] == [True]


def test_prune_keeps_the_most_confident_part_of_the_pool(bench, monkeypatch, tmp_path):
    monkeypatch.setattr(
        bench, "_run_child", lambda cmd, env=None, echo=False: bench.main(cmd[2:])
    )
    argv = ["--sizes", "600", "--eval-links", "50", "--batch-size", "100"]
    argv += [
        "--search",
        "exact",
        "--fanouts",
        "5",
        "5",
        "--plot",
        str(tmp_path / "p.png"),
    ]
    whole = bench.main([*argv, "--out", str(tmp_path / "whole.json")])
    half = bench.main([*argv, "--prune", "0.5", "--out", str(tmp_path / "half.json")])
    pool = whole["sizes"][0]["selection"]["pool"]
    assert pool > 1
    assert half["sizes"][0]["selection"]["pool"] == round(0.5 * pool)
    assert half["sizes"][0]["prune"] == 0.5 and whole["sizes"][0]["prune"] is None
    assert "most confident 0.5" in half["protocol"]["selection"]
    assert "most confident" not in whole["protocol"]["selection"]
