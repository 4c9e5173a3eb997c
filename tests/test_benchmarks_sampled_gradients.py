import argparse
import importlib.util
import json
from pathlib import Path

import pytest

from almea_pyg.pipeline.experiment import ExperimentConfig, run_experiment

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "sampled_gradients.py"
EXACT = ("encoders", "fusion", "lsl", "lsc")  # off the graph path


@pytest.fixture(scope="module")
def sg():
    spec = importlib.util.spec_from_file_location("benchmarks_sampled_grads", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sg") / "run"
    config = ExperimentConfig(epochs=2, model={"dim": 16}, progress=False)
    config.output = str(out)
    run_experiment(config)
    return out


def test_parse_fanouts(sg):
    assert sg.parse_fanouts("25x10") == [25, 10]
    assert sg.parse_fanouts("allx10") == [-1, 10]
    assert sg.parse_fanouts("-1") == [-1]
    for bad in ("0x10", "25x-2", "ax1"):
        with pytest.raises(argparse.ArgumentTypeError):
            sg.parse_fanouts(bad)


def test_sampled_gradients_against_the_whole_graph(sg, run, tmp_path):
    out = tmp_path / "grads.json"
    argv = ["--run", str(run), "--fanouts", "2x2", "allxall", "--draws", "2"]
    result = sg.main([*argv, "--out", str(out), "--threads", "1"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["protocol"]["epoch"] == 2 and result["protocol"]["draws"] == 2
    rows = {(tuple(r["fanouts"]), r["full_forward"]): r for r in result["rows"]}
    assert set(rows) == {
        ((2, 2), False),
        ((2, 2), True),
        ((-1, -1), False),
        ((-1, -1), True),
    }
    # every neighbour: the subgraph step is the whole graph's, in every group
    for full_forward in (False, True):
        groups = rows[((-1, -1), full_forward)]["groups"]
        assert "structure.embedding" in groups and "structure" in groups
        for stats in groups.values():
            assert stats["cosine"] == pytest.approx(1.0, abs=1e-4)
            assert stats["norm_ratio"] == pytest.approx(1.0, abs=1e-4)
    # two neighbours: the embedding table's gradient is not the whole graph's;
    # with whole-graph values the modules off the graph path get exact gradients
    plain, full = rows[((2, 2), False)], rows[((2, 2), True)]
    assert (
        plain["subgraph"]["edges_share"]
        < rows[((-1, -1), True)]["subgraph"]["edges_share"]
    )
    assert plain["groups"]["structure.embedding"]["cosine"] < 0.95
    assert full["groups"]["structure.embedding"]["cosine"] < 0.99
    for group in EXACT:
        assert full["groups"][group]["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert min(plain["groups"][group]["cosine"] for group in EXACT) < 0.99
    # per row of the embedding table: all rows agree with every neighbour,
    # some rows disagree with two, even with whole-graph values
    every_rows = rows[((-1, -1), True)]["groups"]["structure.embedding"]
    assert every_rows["rows_below_0.9"] == 0.0
    assert every_rows["row_cosine_median"] == pytest.approx(1.0)
    assert full["groups"]["structure.embedding"]["rows_below_0.9"] > 0.0
    assert "row_cosine_median" not in full["groups"]["structure"]
    assert "| 2x2 | whole graph |" in sg.markdown(result)
    assert "| allxall | sampled |" in sg.markdown(result)


def test_row_agreement_counts_rows_of_the_reference(sg):
    import torch

    reference = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    grad = torch.tensor([[3.0, 0.0], [5.0, 5.0], [2.0, 0.0], [1.0, 1.0]])
    median, below = sg.row_agreement(grad.flatten(), reference.flatten(), 2)
    assert below == pytest.approx(1 / 3)  # row 2 of the 3 with a gradient
    assert median == pytest.approx(1.0)


def test_parameter_groups_put_embedding_tables_apart(sg):
    import torch

    model = torch.nn.ModuleDict(
        {"a": torch.nn.Sequential(torch.nn.Embedding(3, 2), torch.nn.Linear(2, 2))}
    )
    assert sg.parameter_groups(model) == {
        "a.0.weight": "a.0",
        "a.1.weight": "a",
        "a.1.bias": "a",
    }
