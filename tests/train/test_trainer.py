import csv
import math

import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.models import ALMEA
from almea_pyg.train import Trainer, atomic_save
from almea_pyg.train.trainer import TrainingDivergedError, load_checkpoint_state


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=200, seed=2).split(0.3, seed=0)


def make_trainer(pair, tmp_path=None, model=None, **kwargs):
    torch.manual_seed(0)
    model = ALMEA.from_pair(pair, dim=8, **(model or {}))
    return Trainer(model, pair, output_dir=tmp_path, progress=False, **kwargs)


def test_fit_logs_every_epoch(pair, tmp_path):
    trainer = make_trainer(pair, tmp_path, eval_every=2, batch_size=16)
    history = trainer.fit(3)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert "mrr" in history[1] and "mrr" not in history[0]
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[1]["hits@1"]) == pytest.approx(history[1]["hits@1"])
    assert rows[0]["hits@1"] == ""
    # the fusion weights as they were after each epoch: they move, sum to 1
    weights = [{k: float(v) for k, v in r.items() if "weight_" in k} for r in rows]
    assert set(weights[0]) == {f"weight_{m}" for m in trainer.model.modalities}
    assert all(sum(w.values()) == pytest.approx(1.0) for w in weights)
    assert weights[0] != weights[2]
    assert weights[2] == pytest.approx(
        {f"weight_{m}": w for m, w in trainer.model.modality_weights().items()}
    )


def test_inputs_are_gathered_once(pair, monkeypatch):
    trainer = make_trainer(pair, batch_size=32)
    calls = []
    monkeypatch.setattr(trainer.model, "inputs", lambda p: calls.append(p))
    trainer.fit(2)
    trainer.evaluate()
    assert calls == []
    assert trainer.inputs.num_entities == sum(pair.num_entities)


def test_no_gradient_outlives_an_epoch(pair):
    # they would hold a copy of the parameters through evaluation and selection
    trainer = make_trainer(pair, batch_size=32)
    params = list(trainer.model.parameters())
    trainer._backward(trainer.train_links[:, :32], 0)
    assert any(p.grad is not None for p in params)
    trainer.train_epoch()
    assert all(p.grad is None for p in params)
    assert trainer.optimizer.state  # the optimiser's moments stay


def test_callback_stops_training(pair):
    trainer = make_trainer(pair)
    trainer.fit(10, callback=lambda t: t.epoch == 2)
    assert trainer.epoch == 2


def test_add_train_links_deduplicates(pair):
    trainer = make_trainer(pair)
    before = trainer.train_links.size(1)
    new = pair.test_links[:, :5]
    again = torch.cat([new, new, pair.train_links[:, :3]], dim=1)
    assert trainer.add_train_links(again) == 5
    assert trainer.train_links.size(1) == before + 5
    assert trainer.add_train_links(new) == 0


@pytest.mark.parametrize("fanouts", [None, [3, 2]])
def test_resume_equals_uninterrupted(pair, tmp_path, fanouts):
    straight = make_trainer(pair, batch_size=32, fanouts=fanouts)
    straight.fit(4)
    first = make_trainer(pair, batch_size=32, fanouts=fanouts)
    first.fit(2)
    path = first.save_checkpoint(tmp_path / "ckpt.pt")
    torch.manual_seed(123)
    resumed = make_trainer(pair, batch_size=32, fanouts=fanouts)
    resumed.load_checkpoint(path)
    resumed.fit(2)
    assert resumed.epoch == 4
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_resume_logs_each_epoch_once(pair, tmp_path):
    killed = make_trainer(pair, tmp_path, eval_every=2, batch_size=32)
    killed.fit(2)
    killed.save_checkpoint()
    killed.fit(1)  # logged, then killed before the next checkpoint
    resumed = make_trainer(pair, tmp_path, eval_every=2, batch_size=32)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    resumed.fit(2)
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert rows[1]["mrr"] and rows[3]["mrr"] and not rows[2]["mrr"]
    assert float(rows[1]["loss"]) == pytest.approx(killed.history[1]["loss"])


def test_atomic_save_leaves_no_temporary(tmp_path):
    atomic_save({"x": torch.ones(2)}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_batch_size_validated(pair):
    with pytest.raises(ValueError, match="batch_size"):
        make_trainer(pair, batch_size=1)


def _norms_at_step(trainer):
    """Global gradient norms seen by each optimiser step."""
    norms, step = [], trainer.optimizer.step

    def recording_step(*args, **kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.nn.utils.get_total_norm(grads)))
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    return norms


def test_grad_norm_logged_and_clipped(pair):
    # Two steps per epoch; the logged norm is their mean, before clipping.
    free = make_trainer(pair, batch_size=len(pair.train_links[0]) // 2 + 1)
    free_norms = _norms_at_step(free)
    row = free.train_epoch()
    assert len(free_norms) == 2
    assert row["grad_norm"] == pytest.approx(sum(free_norms) / 2, rel=1e-5)

    limit = 0.1 * min(free_norms)
    clipped = make_trainer(
        pair, batch_size=len(pair.train_links[0]) // 2 + 1, max_grad_norm=limit
    )
    clipped_norms = _norms_at_step(clipped)
    clipped_row = clipped.train_epoch()
    assert max(clipped_norms) == pytest.approx(limit, rel=1e-4)
    # same initialisation and batches: the first step's norm before clipping
    assert clipped_row["grad_norm"] > 5 * limit


def test_schedule_lr_decays_and_ramps_back_up(pair):
    trainer = make_trainer(pair, lr=0.01, batch_size=64)
    trainer.fit(2)
    trainer.schedule_lr(scale=0.5, warmup=2)
    trainer.fit(4)
    lrs = [row["lr"] for row in trainer.history]
    assert lrs == pytest.approx([0.01, 0.01, 0.005 / 3, 0.01 / 3, 0.005, 0.005])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    with pytest.raises(ValueError, match="scale"):
        trainer.schedule_lr(scale=0.0)
    with pytest.raises(ValueError, match="warmup"):
        trainer.schedule_lr(warmup=-1)


def test_resume_keeps_the_lr_schedule(pair, tmp_path):
    straight = make_trainer(pair, batch_size=32)
    straight.schedule_lr(scale=0.5, warmup=3)
    straight.fit(2)
    path = straight.save_checkpoint(tmp_path / "ckpt.pt")
    straight.fit(2)
    resumed = make_trainer(pair, batch_size=32)
    resumed.load_checkpoint(path)
    resumed.fit(2)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in straight.history]
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_max_grad_norm_validated(pair):
    with pytest.raises(ValueError, match="max_grad_norm"):
        make_trainer(pair, max_grad_norm=0.0)


def test_non_finite_loss_stops_before_the_step(pair):
    trainer = make_trainer(pair, lr=1e6, batch_size=64)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, step \d+") as info:
        trainer.fit(20)
    assert "training diverged: " in str(info.value)
    # the parameters are those of the last finite step, not NaN
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert trainer.epoch < 20


def test_non_finite_gradient_stops_before_the_step(pair, monkeypatch):
    trainer = make_trainer(pair)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    monkeypatch.setattr(trainer, "_grad_norm", lambda: torch.tensor(float("inf")))
    with pytest.raises(TrainingDivergedError, match="gradient norm is inf at epoch 1"):
        trainer.fit(1)
    for a, b in zip(before, trainer.model.parameters()):
        assert torch.equal(a, b)


def test_a_new_trainer_starts_a_new_log(pair, tmp_path):
    make_trainer(pair, tmp_path).fit(3)
    make_trainer(pair, tmp_path).fit(1)  # a new run in the same folder
    with open(tmp_path / "log.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1]


def test_metadata_travels_with_the_checkpoint(pair, tmp_path):
    trainer = make_trainer(pair)
    trainer.metadata = {"config": {"seed": 3}, "fingerprint": {"data": "ab"}}
    trainer.fit(1)
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    restored = make_trainer(pair)
    restored.load_checkpoint(path)
    assert restored.metadata == trainer.metadata


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_crafted_checkpoint_is_refused_without_running_code(pair, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="was not unpickled"):
        make_trainer(pair).load_checkpoint(path)
    assert not marker.exists()
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint_state(path)


def test_weight_decay_reaches_adam(pair):
    assert make_trainer(pair).optimizer.param_groups[0]["weight_decay"] == 0.0
    trainer = make_trainer(pair, weight_decay=1e-4)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 1e-4
    with pytest.raises(ValueError, match="weight_decay"):
        make_trainer(pair, weight_decay=-1.0)


def test_minibatch_with_every_neighbour_is_the_full_graph_run(pair):
    """Fan-outs of at least the largest degree sample each batch's whole 2-hop
    neighbourhood (and draw nothing): the run is the full-graph run."""
    degree = torch.bincount(make_trainer(pair).inputs.edge_index[1]).max().item()
    full = make_trainer(pair, batch_size=32)
    mini = make_trainer(pair, batch_size=32, fanouts=[degree, -1])
    assert mini.sampler is not None and full.sampler is None
    histories = []
    for trainer in (full, mini):
        torch.manual_seed(1)  # the same LSL masks and noise
        histories.append(trainer.fit(3))
    full_history, mini_history = histories
    for a, b in zip(full_history, mini_history):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    for a, b in zip(full.model.parameters(), mini.model.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_full_forward_gives_the_whole_graph_loss_and_the_sample_gradient(pair):
    """With ``full_forward`` a sampled step's loss is the full-graph step's; its
    update is the sample's (the parameters then leave the full-graph run's)."""
    full = make_trainer(pair, batch_size=1000)
    mini = make_trainer(pair, batch_size=1000, fanouts=[2, 1], full_forward=True)
    plain = make_trainer(pair, batch_size=1000, fanouts=[2, 1])
    losses = {}
    for name, trainer in (("full", full), ("mini", mini), ("plain", plain)):
        torch.manual_seed(1)  # the same LSL masks and noise
        losses[name] = trainer.fit(1)[0]["loss"]
    assert losses["mini"] == pytest.approx(losses["full"], rel=1e-6)
    assert losses["plain"] != pytest.approx(losses["full"], rel=1e-3)
    embedding = [t.model.structure.embedding.weight for t in (full, mini)]
    assert not torch.allclose(*embedding)


@pytest.mark.parametrize(
    "layers, options",
    [
        (2, {}),
        (2, {"full_forward": True, "full_forward_every": 4}),
        (1, {"full_forward": True, "full_forward_every": 4}),  # reads the table
        (2, {"max_grad_norm": 0.1}),
    ],
    ids=["sampled", "full-forward", "full-forward-one-layer", "clipped"],
)
def test_a_sparse_entity_table_trains_as_the_dense_one(pair, layers, options):
    """Each step reads a few rows of the table; with sparse gradients the rows
    it skips take their Adam steps when next read. After three epochs of six
    steps every parameter is dense Adam's (measured: 6e-8 apart)."""
    trainers, behind = [], []
    for sparse in (False, True):
        trainer = make_trainer(
            pair,
            model={"sparse": sparse, "num_gat_layers": layers},
            batch_size=8,
            fanouts=[3] * layers,
            **options,
        )
        if sparse:  # count the rows left behind after each step
            table = trainer.model.structure.embedding.weight
            state, step = trainer.optimizer.state, trainer.optimizer.step

            def recording_step(state=state, step=step, table=table):
                step()
                lazy = state[table]
                behind.append(int((lazy["row_step"] < lazy["step"]).sum()))

            trainer.optimizer.step = recording_step
        torch.manual_seed(1)  # the same LSL masks and noise
        trainer.fit(3)
        trainers.append(trainer)
    dense, sparse = trainers
    assert max(behind) > 100  # most rows wait for their steps
    table = sparse.model.structure.embedding.weight
    assert "row_step" not in sparse.optimizer.state[table]  # caught up each epoch
    for a, b in zip(dense.history, sparse.history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
    for (name, a), b in zip(dense.model.named_parameters(), sparse.model.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)


def test_full_forward_keeps_the_hidden_layers_values_only(pair):
    # the last layer's are computed at the batch's entities step by step: at a
    # million entities per side an (N, d) tensor (2 GiB) fewer is kept
    trainer = make_trainer(pair, batch_size=32, fanouts=[2, 1], full_forward=True)
    trainer._backward(trainer.train_links[:, :32], 0)
    (hidden,) = trainer._graph_values
    assert hidden.shape == (trainer.inputs.num_entities, 8)
    assert not hidden.requires_grad


def test_sample_draws_the_batch_neighbourhood(pair):
    with pytest.raises(ValueError, match="no sampler"):
        make_trainer(pair).sample(pair.train_links)
    trainer = make_trainer(pair, fanouts=[2, 1])
    batch = pair.train_links[:, :5]
    sub = trainer.sample(batch, torch.Generator().manual_seed(3))
    seeds = torch.cat([batch[0], batch[1] + trainer.inputs.num_source]).unique()
    torch.testing.assert_close(sub.node_index[: seeds.numel()], seeds)
    again = trainer.sample(batch, torch.Generator().manual_seed(3))
    torch.testing.assert_close(again.edge_index, sub.edge_index)


@pytest.mark.parametrize("fanouts", [None, [2, 1]])
def test_the_forward_pass_holds_no_gradient(pair, fanouts):
    # the last step's gradients are dropped before the next forward pass: at a
    # million entities per side they are 2 GiB on top of its peak
    trainer = make_trainer(pair, batch_size=32, fanouts=fanouts)
    params = list(trainer.model.parameters())
    held = []
    trainer.model.register_forward_pre_hook(
        lambda module, args: held.append(any(p.grad is not None for p in params))
    )
    trainer.train_epoch()
    assert len(held) > 1 and not any(held)
    assert trainer.optimizer.state


def test_full_forward_needs_fanouts(pair):
    with pytest.raises(ValueError, match="fanouts"):
        make_trainer(pair, full_forward=True)
    with pytest.raises(ValueError, match="needs full_forward"):
        make_trainer(pair, fanouts=[2, 1], full_forward_every=2)
    with pytest.raises(ValueError, match=">= 1"):
        make_trainer(pair, fanouts=[2, 1], full_forward=True, full_forward_every=0)


@pytest.mark.parametrize("every, passes", [(1, 7), (3, 3), (7, 1), (50, 1)])
def test_full_forward_every_reuses_the_values(pair, every, passes):
    """The whole-graph pass runs at an epoch's first step and every ``every``
    steps after; the steps between reuse its values (7 steps per epoch here)."""
    trainer = make_trainer(
        pair, batch_size=7, fanouts=[2, 1], full_forward=True, full_forward_every=every
    )
    assert math.ceil(trainer.train_links.size(1) / 7) == 7
    calls = []
    hidden_values = trainer.model.graph_hidden_values

    def counted(edge_index):
        calls.append(trainer.epoch)
        return hidden_values(edge_index)

    trainer.model.graph_hidden_values = counted
    trainer.fit(2)
    assert calls == [0] * passes + [1] * passes  # each epoch starts afresh
    assert trainer._graph_values is None  # not kept between epochs


def test_stale_values_change_the_steps_after_the_first(pair):
    """Reused values make the same first step and different later ones."""
    runs = {}
    for every in (1, 2):
        trainer = make_trainer(
            pair,
            batch_size=7,
            fanouts=[2, 1],
            full_forward=True,
            full_forward_every=every,
        )
        steps = []
        step = trainer.optimizer.step

        def record(*args, step=step, trainer=trainer, steps=steps, **kwargs):
            steps.append(trainer.model.structure.embedding.weight.grad.clone())
            return step(*args, **kwargs)

        trainer.optimizer.step = record
        torch.manual_seed(1)
        trainer.fit(1)
        runs[every] = steps
    torch.testing.assert_close(runs[2][0], runs[1][0])
    assert not torch.allclose(runs[2][1], runs[1][1])


def test_minibatch_training_learns_as_well_as_full_batch():
    """Measured (400 entities, 30 % seeds, dim 16, lr 1e-2, batch 32, 15 epochs,
    fan-outs [5, 5]), test MRR full / mini-batch: seed 0 43.9 / 45.9, seed 1
    44.1 / 48.4, seed 2 45.1 / 42.3 (|difference| <= 4.3)."""
    pair = make_synthetic_pair(num_entities=400, seed=2).split(0.3, seed=0)
    results = {}
    for fanouts in (None, [5, 5]):
        torch.manual_seed(0)
        model = ALMEA.from_pair(pair, dim=16)
        trainer = Trainer(
            model, pair, lr=1e-2, batch_size=32, fanouts=fanouts, progress=False
        )
        history = trainer.fit(15)
        results[fanouts is None] = (history, trainer.evaluate()["mrr"])
    (_, full_mrr), (history, mrr) = results[True], results[False]
    assert history[-1]["loss"] < history[0]["loss"] / 4
    assert full_mrr > 30  # both learn (chance: ~2)
    assert abs(mrr - full_mrr) < 6


def _saved_bytes(trainer, batch):
    """Bytes of the tensors a training step keeps for its backward pass (its
    activations, and the weights the layers save), each storage counted once."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        trainer._backward(batch, 0)
    return sum(storages.values())


def test_minibatch_step_memory_does_not_grow_with_the_graph():
    """The activations of a step at N = 2,000 and 20,000 (per side, before
    dropout), same batch and fan-outs: measured 3.6 and 3.9 MiB mini-batch,
    6.2 and 39.1 MiB full-graph. (Gradients and Adam's state are the size of
    the parameters, the N x d entity table included, either way.)"""
    saved = {}
    for fanouts in (None, [5, 5]):
        for num in (2_000, 20_000):
            pair = make_synthetic_pair(num_entities=num, seed=0).split(0.2, seed=0)
            torch.manual_seed(0)
            model = ALMEA.from_pair(pair, dim=32)
            trainer = Trainer(model, pair, batch_size=64, fanouts=fanouts)
            saved[fanouts is None, num] = _saved_bytes(
                trainer, pair.train_links[:, :64]
            )
    assert saved[False, 20_000] < 1.5 * saved[False, 2_000]
    assert saved[True, 20_000] > 4 * saved[True, 2_000]  # what it would be
