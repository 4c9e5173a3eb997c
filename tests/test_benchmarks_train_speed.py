"""benchmarks/train_speed.py: the dense GAT layer, the worker runs and the guards."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.nn import GATConv

from almea_pyg.metrics import evaluate_alignment
from almea_pyg.nn.encoders import StructuralEncoder

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_graph() -> tuple[torch.Tensor, int]:
    """Unique directed edges, one existing self-loop (2), node 5 with no in-edge."""
    edge_index = torch.tensor(
        [[0, 1, 2, 3, 4, 0, 2, 6, 1, 3], [1, 2, 2, 0, 0, 3, 4, 4, 6, 6]]
    )
    return edge_index, 7


@pytest.mark.parametrize("heads,concat", [(1, False), (1, True), (2, False), (2, True)])
def test_dense_gat_equals_gatconv(bench, heads, concat):
    edge_index, n = tiny_graph()
    torch.manual_seed(0)
    ref = GATConv(5, 4, heads=heads, concat=concat)
    dense = bench.DenseGATConv(5, 4, heads=heads, concat=concat)
    with torch.no_grad():
        ref.bias.normal_()
    dense.load_state_dict(ref.state_dict())
    x_ref = torch.randn(n, 5, requires_grad=True)
    x_dense = x_ref.detach().clone().requires_grad_()
    out_ref, out_dense = ref(x_ref, edge_index), dense(x_dense, edge_index)
    assert out_dense.shape == out_ref.shape == (n, 4 * heads if concat else 4)
    torch.testing.assert_close(out_dense, out_ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out_ref)
    (out_ref * grad).sum().backward()
    (out_dense * grad).sum().backward()
    torch.testing.assert_close(x_dense.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    for name, param in dense.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], atol=1e-5, rtol=1e-5)


def test_dense_gat_in_structural_encoder(bench):
    edge_index, n = tiny_graph()
    torch.manual_seed(1)
    ref = StructuralEncoder(n, 8, conv=GATConv)
    torch.manual_seed(1)
    dense = StructuralEncoder(n, 8, conv=bench.DenseGATConv)
    assert "conv=DenseGATConv" in repr(dense)
    torch.testing.assert_close(dense(edge_index), ref(edge_index), atol=1e-5, rtol=0)


def test_dense_non_adjacency(bench):
    edge_index, n = tiny_graph()
    mask = bench.dense_non_adjacency(edge_index, n)
    expected = torch.ones(n, n, dtype=torch.bool)
    expected[edge_index[1], edge_index[0]] = False
    expected[torch.arange(n), torch.arange(n)] = False
    assert torch.equal(mask, expected)
    assert not mask[1, 0] and mask[0, 1]  # row = destination, column = source
    assert bench.dense_non_adjacency(edge_index.clone(), n) is mask  # built once
    edge_index[0, 0] = 5  # edited in place: built again
    assert not bench.dense_non_adjacency(edge_index, n)[1, 5]


def test_dense_gat_rejects_unsupported(bench):
    with pytest.raises(NotImplementedError):
        bench.DenseGATConv(4, 4, add_self_loops=False)
    with pytest.raises(NotImplementedError):
        bench.DenseGATConv(4, 4, edge_dim=3)


def test_training_run_in_subprocesses(bench, tmp_path):
    out = tmp_path / "train_speed.json"
    argv = ["--dataset", "synthetic", "--synthetic-entities", "150", "--epochs", "1"]
    argv += ["--warmup", "0", "--implementations", "library", "dense"]
    argv += ["--threads", "1", "--eval-sizes", "--out", str(out)]
    bench.main(argv)
    report = json.loads(out.read_text())
    assert report["protocol"]["training"]["epochs_timed"] == 1
    assert report["protocol"]["torch"] == torch.__version__
    assert "evaluation" not in report
    runs = report["training"]["implementations"]
    assert runs["library"]["conv"] == "CSRGATConv"
    assert runs["dense"]["conv"] == "DenseGATConv"
    for run in runs.values():
        assert "seconds_per_epoch" in run, run  # shows a failed worker's stderr
        assert len(run["epoch_seconds"]) == 1 and run["seconds_per_epoch"] > 0
        assert run["peak_rss_mib"] > 100  # the whole process, torch included
        assert run["warmup_seconds"] == []
        assert run["threads"] == 1  # --threads reaches the workers
    ratios = report["training"]["ratios"]["dense/library"]
    expected = runs["dense"]["seconds_per_epoch"] / runs["library"]["seconds_per_epoch"]
    assert ratios["time"] == pytest.approx(expected)
    assert ratios["peak_memory"] > 0
    # Same seed, same initial weights and masks: the two models train alike.
    assert ratios["loss_max_rel_diff"] < 1e-4


def test_minibatch_worker(bench):
    argv = ["--dataset", "synthetic", "--synthetic-entities", "150", "--epochs", "1"]
    argv += ["--warmup", "0", "--batch-size", "8", "--fanouts", "3", "2"]
    result = bench.main([*argv, "--worker", "library"])
    assert (result["batch_size"], result["fanouts"]) == (8, [3, 2])
    assert result["steps_per_epoch"] == -(-result["train_links"] // 8)
    # 16 seed entities at most, 3 then 2 neighbours each: at most 16 * (1 + 3 + 6)
    assert 2 <= result["subgraph_nodes_mean"] <= 160
    assert result["subgraph_edges_mean"] <= 16 * (3 + 6)
    assert result["embed_seconds"] > 0
    assert result["embed_peak_added_mib"] >= 0


def test_memory_guard_skips_dense(bench, capsys):
    argv = ["--dataset", "synthetic", "--synthetic-entities", "150"]
    result = bench.main([*argv, "--worker", "dense", "--max-dense-gib", "0.0001"])
    assert result["skipped"].startswith("would need ~")
    assert "--max-dense-gib 0.0001" in result["skipped"]
    assert result["estimated_gib"] > 0.0001
    assert "seconds_per_epoch" not in result
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(printed.removeprefix(bench.RESULT_PREFIX)) == result


def test_memory_guard_against_available(bench, monkeypatch):
    monkeypatch.setattr(bench, "mem_available_gib", lambda: 3.0)
    assert bench.memory_guard(2.0, 20.0) is None
    expected = "would need ~4.0 GiB, 3.0 GiB available, --max-dense-gib 20"
    assert bench.memory_guard(4.0, 20.0) == expected
    assert bench.memory_guard(2.5, 2.0).startswith("would need ~2.5 GiB, 3.0 GiB")
    assert bench.dense_training_gib(27_717, layers=2, heads=1) > 20


@pytest.mark.parametrize("metric", ["cosine", "csls"])
@pytest.mark.parametrize("num_links,all_candidates", [(120, False), (40, True)])
def test_dense_evaluation_matches_chunked(bench, metric, num_links, all_candidates):
    x, y = bench.synthetic_embeddings(120, 16, noise=3.0, seed=0)
    links = torch.arange(num_links).repeat(2, 1)
    candidates = torch.arange(120) if all_candidates else None
    kwargs = {"metric": metric, "csls_k": 3, "candidates": candidates}
    expected = evaluate_alignment(x, y, links, chunk_size=7, **kwargs)
    got = bench.dense_evaluate(x, y, links, **kwargs)
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-9)
    assert 0 < expected["hits@1"] < 100  # neither trivial nor hopeless


def test_evaluation_section(bench, tmp_path, monkeypatch):
    # Workers run in this process (same command line), to keep the test fast.
    children = []

    def run_child(cmd, env=None):
        children.append(cmd)
        return bench.main(cmd[2:])

    monkeypatch.setattr(bench, "_run_child", run_child)
    out = tmp_path / "eval.json"
    argv = ["--implementations", "--eval-sizes", "200", "--eval-dim", "16"]
    bench.main([*argv, "--eval-repeats", "2", "--eval-links", "150", "--out", str(out)])
    report = json.loads(out.read_text())
    assert "training" not in report
    assert report["protocol"]["evaluation"]["csls_k"] == 3
    (entry,) = report["evaluation"]["sizes"]
    assert (entry["n"], entry["links"]) == (200, 150)
    assert len(children) == 4
    for metric in ("cosine", "csls"):
        chunked, dense = entry[f"chunked_{metric}"], entry[f"dense_{metric}"]
        assert len(chunked["all_seconds"]) == 2 and chunked["seconds"] > 0
        assert chunked["peak_added_mib"] >= 0
        assert set(chunked["metrics"]) == {"hits@1", "hits@10", "mrr"}
        assert entry[f"{metric}_metrics_max_abs_diff"] < 1e-9
        assert dense["metrics"] == pytest.approx(chunked["metrics"])


def test_evaluation_dense_does_not_fit(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_run_child", lambda cmd, env=None: bench.main(cmd[2:]))
    out = tmp_path / "eval.json"
    argv = ["--implementations", "--eval-sizes", "100", "--eval-dim", "8"]
    bench.main([*argv, "--max-dense-gib", "1e-6", "--out", str(out)])
    (entry,) = json.loads(out.read_text())["evaluation"]["sizes"]
    for metric in ("cosine", "csls"):
        assert entry[f"dense_{metric}"]["skipped"].startswith("does not fit: would")
        assert "metrics" in entry[f"chunked_{metric}"]
    assert "cosine_metrics_max_abs_diff" not in entry


@pytest.mark.parametrize("echo", [False, True])
def test_run_child_result_log_and_failure(bench, capfd, echo):
    script = (
        "import sys; print('worker log', file=sys.stderr, flush=True); "
        f"print({bench.RESULT_PREFIX!r} + '{{\"ok\": 1}}')"
    )
    assert bench._run_child([sys.executable, "-c", script], echo=echo) == {"ok": 1}
    assert ("worker log" in capfd.readouterr().err) is echo
    failed = bench._run_child(
        [sys.executable, "-c", "import sys; sys.exit('no result')"], echo=echo
    )
    assert failed["failed"] == "worker exited with status 1"
    assert "no result" in failed["stderr_tail"]
