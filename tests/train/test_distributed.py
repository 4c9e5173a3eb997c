"""Data-parallel training: two CPU processes (gloo, under torchrun) train as one
process with the same global batch."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch
import torch.distributed as dist

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.models import ALMEA
from almea_pyg.train import Trainer
from almea_pyg.train.distributed import _buckets, shard
from almea_pyg.train.trainer import load_checkpoint_state

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "ddp_train.py"

#: 75 seed links in batches of 32, 32 and 11 (shares of 5 and 6), 2 epochs: six
#: steps; latent chunks of 4 pairs, so each share is checkpointed in chunks too.
RUN = {
    "entities": 300,
    "seed_ratio": 0.3,
    "dim": 16,
    "batch_size": 32,
    "latent_chunk_size": 4,
    "lr": 1e-3,
    "epochs": 2,
    "seed": 0,
}

#: Generous for a busy 2-core machine (the run takes ~15 s there).
TIMEOUT_S = 300


@pytest.mark.parametrize("num, world_size", [(11, 2), (32, 2), (3, 4), (0, 2)])
def test_shard_partitions_the_positions(num, world_size):
    shares = [shard(num, rank, world_size) for rank in range(world_size)]
    assert torch.equal(torch.cat(shares), torch.arange(num))
    sizes = [share.numel() for share in shares]
    assert max(sizes) - min(sizes) <= 1


def test_shard_rejects_a_rank_outside_the_group():
    with pytest.raises(ValueError, match="rank"):
        shard(10, 2, 2)


def test_buckets_cut_at_the_size_limit_and_at_dtype_changes():
    params = [
        torch.zeros(10),
        torch.zeros(10),
        torch.zeros(30),
        torch.zeros(5, dtype=torch.float64),
        torch.zeros(1),
    ]
    buckets = [[p.numel() for p in bucket] for bucket in _buckets(params, 80)]
    assert buckets == [[10, 10], [30], [5], [1]]


def one_process(fanouts: Optional[list[int]]) -> Trainer:
    """The reference: ``examples/ddp_train.py``'s run with the plain Trainer."""
    pair = make_synthetic_pair(num_entities=RUN["entities"], seed=RUN["seed"])
    pair = pair.split(RUN["seed_ratio"], seed=RUN["seed"])
    with torch.random.fork_rng():
        torch.manual_seed(RUN["seed"])
        model = ALMEA.from_pair(
            pair, dim=RUN["dim"], latent_chunk_size=RUN["latent_chunk_size"]
        )
        trainer = Trainer(
            model,
            pair,
            lr=RUN["lr"],
            batch_size=RUN["batch_size"],
            seed=RUN["seed"],
            progress=False,
            fanouts=fanouts,
        )
        trainer.fit(RUN["epochs"])
    return trainer


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from ``/proc``): torchrun starts its workers
    in sessions of their own, out of reach of a process-group kill."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()) or sys.platform != "linux",
    reason="needs torch.distributed with gloo, on Linux",
)
@pytest.mark.parametrize(
    "fanouts, sparse",
    [(None, False), ([3, 2], False), ([3, 2], True)],
    ids=["full-graph", "mini-batch", "mini-batch-sparse-table"],
)
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, fanouts, sparse):
    # mini-batch: every process draws the same subgraphs from the trainer's
    # seeded generator (the library's sampler; pyg-lib is not installed here).
    # A sparse table's gradients are summed dense: the reference is dense Adam
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in RUN.items()]
    flags += ["--fanouts", *map(str, fanouts)] if fanouts else []
    flags += ["--sparse"] if sparse else []
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(SCRIPT),
            *flags,
            f"--output={tmp_path}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        reference = one_process(fanouts)  # while the two processes train
        output, _ = agent.communicate(timeout=TIMEOUT_S)
    finally:
        if agent.poll() is None:  # failed or timed out: leave nothing behind
            for pid in [*descendants(agent.pid), agent.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            agent.wait()
    assert agent.returncode == 0, output[-4000:]
    assert "2 process(es)" in output

    # float32, summed in another order (each process its rows, then the
    # all-reduce). Measured: losses within 1e-7 (relative), parameters after six
    # Adam steps of 1e-3 within 4e-7, so 1e-5 is < 1/100 of what the steps moved
    # them: a split that lost negatives or LSL draws, or averaged the gradients,
    # fails it. The gradient norm reacts to rounding far more (4e-5 relative at
    # step 6), hence 1e-3 for it.
    state = load_checkpoint_state(tmp_path / "checkpoint.pt")
    assert state["epoch"] == reference.epoch == RUN["epochs"]
    moved = 0.0
    with torch.random.fork_rng():
        torch.manual_seed(RUN["seed"])
        initial = ALMEA.from_pair(reference.pair, dim=RUN["dim"]).state_dict()
    for name, value in reference.model.state_dict().items():
        assert torch.allclose(state["model"][name], value, rtol=0, atol=1e-5), name
        moved = max(moved, float((value - initial[name]).abs().max()))
    assert moved > 1e-3  # so that the tolerance means something
    for two, one in zip(state["history"], reference.history, strict=True):
        for key, value in one.items():
            if key != "seconds":
                rel = 1e-3 if key == "grad_norm" else 1e-5
                assert two[key] == pytest.approx(value, rel=rel), key
    assert reference.history[-1]["loss"] < reference.history[0]["loss"]
