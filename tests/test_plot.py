import subprocess
import sys

import pytest
import torch

from almea_pyg.plot import project_2d, save_run_plots

pytest.importorskip("matplotlib")


def test_project_2d_keeps_the_main_directions():
    x = torch.zeros(50, 5)
    x[:, 3] = torch.linspace(-10, 10, 50)
    x[:, 1] = torch.linspace(-1, 1, 50).flip(0) * torch.linspace(-1, 1, 50)
    xy = project_2d(x)
    assert xy.shape == (50, 2)
    assert xy[:, 0].std() > 5 * xy[:, 1].std()


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
def test_save_run_plots_writes_pngs(tmp_path, device):
    history = [
        {"epoch": 1, "loss": 2.0, "weight_graph": 0.5, "weight_rel": 0.5},
        {
            "epoch": 2,
            "loss": 1.0,
            "hits@1": 30.0,
            "weight_graph": 0.6,
            "weight_rel": 0.4,
        },
    ]
    rounds = [
        {"round": 0, "hits@1": 10.0, "hits@10": 30.0, "mrr": 15.0},
        {"round": 1, "hits@1": 12.0, "hits@10": 33.0, "mrr": 17.0},
    ]
    emb = torch.randn(20, 4, device=device), torch.randn(15, 4, device=device)
    labelled = torch.tensor([[0, 1, 2], [3, 4, 5]], device=device)
    selected = torch.tensor([[7, 8], [9, 10]], device=device)
    paths = save_run_plots(tmp_path, history, rounds, (*emb, labelled, selected))
    names = ["training.png", "modality_weights.png", "rounds.png", "selection_map.png"]
    assert [p.name for p in paths] == names
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    # A backend the user chose stays chosen; in a subprocess, to start unchosen.
    code = f"""
import matplotlib
matplotlib.use("svg")
import torch
from almea_pyg.plot import save_run_plots
history = [{{"epoch": 1, "loss": 1.0, "hits@1": 5.0, "weight_graph": 1.0}}]
rounds = [{{"round": 0, "hits@1": 1.0, "hits@10": 2.0, "mrr": 1.5}}]
pairs = torch.tensor([[0, 1], [2, 3]])
selection = (torch.randn(5, 3), torch.randn(5, 3), pairs, pairs)
assert len(save_run_plots({str(tmp_path)!r}, history, rounds, selection)) == 4
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
