"""Training of an alignment model on a pair's seed links: full-graph or mini-batch."""

from __future__ import annotations

import csv
import io
import logging
import os
import pickle
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from almea_pyg.data.pair import MMKGPair, link_keys
from almea_pyg.io import atomic_save, atomic_write_text
from almea_pyg.metrics.ranking import evaluate_alignment
from almea_pyg.train.memory import release_free_memory
from almea_pyg.train.optim import make_adam
from almea_pyg.train.sampling import NeighborSampling, SampledSubgraph
from almea_pyg.typing import SimilarityMetric

log = logging.getLogger(__name__)

#: The learning-rate schedule of a trainer that :meth:`Trainer.schedule_lr` never
#: changed: the base rate from epoch 0 on.
CONSTANT_LR = {"scale": 1.0, "warmup": 0, "start": 0}

#: ``callback(trainer)`` after every epoch; returning ``True`` stops training.
EpochCallback = Callable[["Trainer"], "bool | None"]


class TrainingDivergedError(FloatingPointError):
    """A loss or gradient norm became NaN or infinite: the run has diverged.

    Raised before the optimiser step that would write it into the parameters, so
    the model and the last checkpoint keep the state of the last finite step.
    """


class Trainer:
    r"""Trains an alignment model such as :class:`~almea_pyg.models.ALMEA`: its
    ``inputs(pair)`` (gathered once, :attr:`inputs`), its
    ``forward(x_dict, edge_index, present_dict, source_index, target_index)`` on
    them and a batch of seed links, its ``loss(out)`` (a dict of losses, key
    ``"loss"`` the total) and its ``embed(inputs)`` (the joint embeddings of both
    KGs).

    Each epoch shuffles the seed links and takes one Adam step per batch of
    ``batch_size`` links (the paper's schedule: lr 1e-3, batch 3500, so one step
    per epoch at 20 % seeds). By default each step runs the GAT on the whole
    graph. With ``fanouts`` (mini-batch training) it runs on the batch's sampled
    neighbourhood instead (:class:`~almea_pyg.train.sampling.NeighborSampling`
    from the batch's source and target entities, one hop per fan-out, drawn from
    the trainer's seeded generator): the model gets the subgraph's
    ``edge_index``, its node ids as ``node_index`` and its rows and edges per
    hop (each GAT layer runs only on the hops the seeds read), the feature
    encoders and the losses (in-batch InfoNCE, LSL/LSC) see the batch's rows as
    in a full-graph step, and the step's activations scale with the batch and
    fan-outs, not with the graph (parameters and Adam's state do: the entity
    table is :math:`N \times d`; so does its gradient, unless the model gives
    it as sparse rows, ``ALMEA(sparse=True)``, which the trainer's
    :class:`~almea_pyg.train.optim.RowSparseAdam` steps row by row). With
    fan-outs of at least the largest degree, one per GAT layer, a step equals
    the full-graph step (without dropout). Evaluation (:meth:`evaluate`) always
    embeds the whole graph.

    Each epoch's losses, time, seed count, metrics (when evaluated) and the
    model's ``modality_weights()`` (if it has them) go to the history and
    ``log.csv``. The trainer can be paused between epochs and handed
    new seed links (:meth:`add_train_links`), which is what active learning does.
    The log also holds ``grad_norm``, the mean global L2 norm of the gradients
    before any clipping, so that instabilities of training can be traced, and
    ``lr``, the epoch's learning rate (:meth:`schedule_lr` changes it). A
    non-finite loss or gradient norm stops training with
    :class:`TrainingDivergedError` naming the epoch and step, before the step.
    :attr:`metadata` (e.g. the run's configuration) is saved with every
    checkpoint and restored from it.

    Args:
        model (nn.Module): The alignment model.
        pair (MMKGPair): The split pair; ``pair.train_links`` are the first seeds.
        lr (float): Adam learning rate. (default: ``1e-3``)
        weight_decay (float): Adam's L2 weight decay; the paper's public code
            uses ``1e-4``, its text none. (default: ``0.0``)
        batch_size (int): Seed links per step. (default: ``3500``)
        eval_every (int): Evaluate on the test links every this many epochs
            (``0``: never during :meth:`fit`). (default: ``0``)
        metric (str): ``"cosine"`` or ``"csls"`` for evaluation. (default: ``"csls"``)
        csls_k (int): CSLS neighbourhood size. (default: ``3``)
        output_dir (str, optional): Where the per-epoch CSV log and checkpoints go.
        seed (int): Seed of the batch shuffling. (default: ``0``)
        max_grad_norm (float, optional): Clip the gradients' global L2 norm to
            this before each step. Not in the paper's schedule. (default: ``None``,
            no clipping)
        progress (bool): Show a progress bar. (default: ``True``)
        fanouts (Sequence[int], optional): Mini-batch training: neighbours
            sampled per node at each hop, one hop per GAT layer (``-1``: all); the
            model's ``forward`` must take ``node_index``,
            ``num_sampled_nodes_per_hop`` and ``num_sampled_edges_per_hop``
            (``None`` where the sampler does not count hops). (default:
            ``None``, full-graph steps)
        full_forward (bool): With ``fanouts``, each step first runs the GAT's
            hidden layers on the whole graph without gradients, and its last
            layer at the batch's entities over their every incoming edge; the
            sampled neighbourhood's layers take those values and keep their own
            gradients, so the loss is the whole graph's and only the backward
            pass is sampled (the model must have ``graph_hidden_values`` and
            ``graph_values`` and take ``graph_values``). It costs a forward pass
            over the whole graph per step, without its activations. (default:
            ``False``)
        full_forward_every (int): With ``full_forward``, run the whole-graph
            pass at an epoch's first step and every this many steps after; the
            steps between reuse its hidden layers' values (a history, as in
            GNNAutoScale, Fey et al., 2021) and compute the last layer's from
            them, so the loss is the whole graph's with hidden layers up to
            ``full_forward_every - 1`` steps old, and the pass costs once per
            that many steps. (default: ``1``, every step)
    """

    def __init__(
        self,
        model: nn.Module,
        pair: MMKGPair,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 3500,
        eval_every: int = 0,
        metric: SimilarityMetric = "csls",
        csls_k: int = 3,
        output_dir: str | os.PathLike | None = None,
        seed: int = 0,
        max_grad_norm: float | None = None,
        progress: bool = True,
        fanouts: Sequence[int] | None = None,
        full_forward: bool = False,
        full_forward_every: int = 1,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive, got {max_grad_norm}")
        self.model = model
        self.pair = pair
        #: The model's inputs from :attr:`pair`, gathered once.
        self.inputs = model.inputs(pair)
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.optimizer = make_adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        #: The base learning rate; each epoch trains at :meth:`current_lr`.
        self.lr = lr
        self._lr_schedule = dict(CONSTANT_LR)
        self.batch_size = batch_size
        if full_forward and fanouts is None:
            raise ValueError("full_forward needs fanouts (mini-batch training)")
        if full_forward_every < 1:
            raise ValueError(
                f"full_forward_every must be >= 1, got {full_forward_every}"
            )
        if full_forward_every != 1 and not full_forward:
            raise ValueError("full_forward_every needs full_forward")
        self.max_grad_norm = max_grad_norm
        self.full_forward = full_forward
        self.full_forward_every = full_forward_every
        # the whole-graph values (full_forward) and the steps since they ran;
        # an epoch starts without them, so a resumed run equals an uninterrupted one
        self._graph_values: list[Tensor] | None = None
        self._graph_values_age = 0
        self.eval_every = eval_every
        self.metric = metric
        self.csls_k = csls_k
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.progress = progress
        self.generator = torch.Generator().manual_seed(seed)
        #: Samples each batch's neighbourhood (``None``: full-graph steps).
        self.sampler = (
            NeighborSampling(self.inputs.edge_index, self.inputs.num_entities, fanouts)
            if fanouts is not None
            else None
        )
        # the batch's entities with every incoming edge, for the last layer's
        # values (full_forward)
        self._seed_edges = (
            NeighborSampling(self.inputs.edge_index, self.inputs.num_entities, [-1])
            if full_forward
            else None
        )
        self.train_links = pair.train_links.clone()
        #: The links :meth:`evaluate` scores by default (a copy: active learning
        #: may move revealed ones to the seeds; the pair is never changed).
        self.test_links = pair.test_links.clone()
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        #: Free-form state saved with every checkpoint (e.g. the run's config).
        self.metadata: dict[str, Any] = {}
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)

    def add_train_links(self, links: Tensor) -> int:
        """Add seed links ``(2, n)`` (duplicates ignored); returns how many were new."""
        links = links.to(self.train_links.device)
        num_targets = self.pair.num_entities[1]
        known = torch.isin(
            link_keys(links, num_targets), link_keys(self.train_links, num_targets)
        )
        new = torch.unique(links[:, ~known], dim=1)
        self.train_links = torch.cat([self.train_links, new], dim=1)
        return new.size(1)

    def schedule_lr(self, *, scale: float = 1.0, warmup: int = 0) -> None:
        """From the next epoch on, train at ``scale`` times :attr:`lr`, reached
        linearly over ``warmup`` epochs (the ``i``-th of them at ``i / (warmup +
        1)`` of it): a decay and a re-warm-up of the learning rate, e.g. after
        active learning added seed links."""
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0 epochs, got {warmup}")
        self._lr_schedule = {"scale": scale, "warmup": warmup, "start": self.epoch}

    def current_lr(self) -> float:
        """The learning rate of the next epoch (:meth:`schedule_lr`)."""
        schedule = self._lr_schedule
        ramp = (self.epoch - schedule["start"] + 1) / (schedule["warmup"] + 1)
        return self.lr * schedule["scale"] * min(1.0, ramp)

    def train_epoch(self) -> dict[str, float]:
        """One pass over the seed links; returns the mean of each loss term, of
        ``grad_norm`` and the epoch's ``lr``."""
        self.model.train()
        self._graph_values = None
        lr = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        num = self.train_links.size(1)
        perm = torch.randperm(num, generator=self.generator).to(self.train_links.device)
        sums: dict[str, float] = {}
        steps = 0
        for start in range(0, num, self.batch_size):
            batch = self.train_links[:, perm[start : start + self.batch_size]]
            if batch.size(1) < 2:
                continue
            losses = self._backward(batch, steps)
            grad_norm = self._grad_norm()
            self._check_finite("gradient norm", grad_norm, steps)
            self.optimizer.step()
            for key, value in {**losses, "grad_norm": grad_norm}.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            steps += 1
        self.epoch += 1
        self.optimizer.catch_up()
        # neither the last step's gradients (one copy of the parameters) nor the
        # whole-graph values are kept through evaluation and selection: the next
        # step clears the one, the next epoch computes the other again
        self._graph_values = None
        self.optimizer.zero_grad(set_to_none=True)
        release_free_memory()
        means = {key: value / max(steps, 1) for key, value in sums.items()}
        return {**means, "lr": lr}

    def _backward(self, batch: Tensor, step: int) -> dict[str, Tensor]:
        """The losses of one batch of seed links ``(2, B)``, with the gradients of
        the total in ``.grad`` (what a distributed trainer splits over processes).
        The last step's gradients (a copy of the parameters) are dropped before
        the forward pass, not after it, so that they do not add to its peak."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.model.loss(self._forward(batch))
        self._check_finite("loss", losses["loss"], step)
        losses["loss"].backward()
        return losses

    def _forward(self, batch: Tensor) -> Any:
        """The model's output for a batch of seed links ``(2, B)``: over the whole
        graph, or over the batch's sampled neighbourhood."""
        inputs = self.inputs
        if self.sampler is None:
            return self.model(
                inputs.features, inputs.edge_index, inputs.present, batch[0], batch[1]
            )
        sub = self.sample(batch)
        # rows an embedding table with sparse gradients left behind are brought
        # to the present step before the forward pass reads them
        self.optimizer.catch_up(sub.node_index)
        values = {}
        if self.full_forward:
            hidden = self._whole_graph_values()
            seeds = self._seeds(batch)  # the first rows of sub
            edges = self._seed_edges(seeds)
            self.optimizer.catch_up(edges.node_index)
            values["graph_values"] = self.model.graph_values(
                hidden,
                edges.edge_index,
                edges.node_index,
                seeds.numel(),
            )
        return self.model(
            inputs.features,
            sub.edge_index,
            inputs.present,
            batch[0],
            batch[1],
            node_index=sub.node_index,
            num_sampled_nodes_per_hop=sub.num_sampled_nodes,
            num_sampled_edges_per_hop=sub.num_sampled_edges,
            **values,
        )

    def sample(
        self, batch: Tensor, generator: torch.Generator | None = None
    ) -> SampledSubgraph:
        """The sampled neighbourhood of a batch of seed links ``(2, B)``: its
        source and target entities in the union graph's ids are the seeds
        (draws from ``generator``, default the trainer's own)."""
        if self.sampler is None:
            raise ValueError("no sampler: the trainer takes full-graph steps")
        return self.sampler(
            self._seeds(batch), self.generator if generator is None else generator
        )

    def _seeds(self, batch: Tensor) -> Tensor:
        """The distinct source and target entities of seed links ``(2, B)``, in
        the union graph's ids."""
        return torch.cat([batch[0], batch[1] + self.inputs.num_source]).unique()

    def _whole_graph_values(self) -> list[Tensor]:
        """The GAT's hidden layers' outputs on the whole graph, run again once
        they are :attr:`full_forward_every` steps old (or none are kept)."""
        if (
            self._graph_values is None
            or self._graph_values_age >= self.full_forward_every
        ):
            self.optimizer.catch_up()
            self._graph_values = self.model.graph_hidden_values(self.inputs.edge_index)
            self._graph_values_age = 0
        self._graph_values_age += 1
        return self._graph_values

    def _check_finite(self, name: str, value: Tensor, step: int) -> None:
        if not bool(torch.isfinite(value.detach())):
            raise TrainingDivergedError(
                f"training diverged: {name} is {float(value.detach())} at epoch "
                f"{self.epoch + 1}, step {step + 1} (parameters kept from the step "
                "before; lower the learning rate or clip the gradients)"
            )

    def _grad_norm(self) -> Tensor:
        """The gradients' global L2 norm, after clipping them if asked to (a
        sparse gradient is coalesced first, so that its rows are distinct)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                p.grad = p.grad.coalesce()
        norm = nn.utils.get_total_norm(
            [p.grad.values() if p.grad.is_sparse else p.grad for p in params]
        )
        if self.max_grad_norm is not None:
            nn.utils.clip_grads_with_norm_(params, self.max_grad_norm, norm)
        return norm

    @torch.no_grad()
    def evaluate(
        self, links: Tensor | None = None, *, metric: SimilarityMetric | None = None
    ) -> dict[str, float]:
        """Hits@1, Hits@10 and MRR (%) on ``links`` (default: :attr:`test_links`)."""
        links = self.test_links if links is None else links
        emb_s, emb_t = self.model.embed(self.inputs)
        return evaluate_alignment(
            emb_s, emb_t, links, metric=metric or self.metric, csls_k=self.csls_k
        )

    def fit(
        self, epochs: int, *, callback: EpochCallback | None = None
    ) -> list[dict[str, float]]:
        """Train ``epochs`` more epochs; log each to the CSV and the history."""
        bar = tqdm(range(epochs), desc="train", disable=not self.progress, leave=False)
        for _ in bar:
            start = time.perf_counter()
            row: dict[str, float] = {"epoch": self.epoch + 1}
            row.update(self.train_epoch())
            row["seconds"] = time.perf_counter() - start
            row["seeds"] = self.train_links.size(1)
            weights = getattr(self.model, "modality_weights", None)
            if weights is not None:
                row.update({f"weight_{m}": w for m, w in weights().items()})
            if self.eval_every and self.epoch % self.eval_every == 0:
                row.update(self.evaluate())
            self.history.append(row)
            self._log(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if callback is not None and callback(self):
                break
        return self.history

    def _log(self, row: dict[str, float]) -> None:
        if self.output_dir is None:
            return
        path = self.output_dir / "log.csv"
        new = len(self.history) == 1 or not path.exists()
        with open(path, "w" if new else "a", newline="") as f:
            writer = _log_writer(f, row)
            if new:
                writer.writeheader()
            writer.writerow(row)

    def rewrite_log(self) -> None:
        """Write ``log.csv`` afresh from the history, atomically."""
        if self.output_dir is None or not self.history:
            return
        text = io.StringIO(newline="")
        writer = _log_writer(text, self.history[0])
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(text.getvalue(), self.output_dir / "log.csv")

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_links": self.train_links,
            "epoch": self.epoch,
            "lr_schedule": self._lr_schedule,
            "history": self.history,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (
                torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
            ),
            "metadata": self.metadata,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`, including torch's global random state
        (CPU, and CUDA where saved and present): the model's dropout and latent
        noise draw from it, so a resumed run equals an uninterrupted one."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train_links = state["train_links"].to(self.pair.links.device)
        self.epoch = state["epoch"]
        self._lr_schedule = dict(state.get("lr_schedule", CONSTANT_LR))
        self.history = state["history"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.metadata = state.get("metadata", {})

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Save all that resuming needs, atomically (default: output_dir)."""
        if path is None:
            if self.output_dir is None:
                raise ValueError("no path given and the trainer has no output_dir")
            path = self.output_dir / "checkpoint.pt"
        atomic_save(self.state_dict(), path)
        return Path(path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore ``path``; ``log.csv`` is rewritten from its history, so that
        epochs a killed run logged after its last checkpoint are not logged twice.

        Loaded with ``weights_only=True``: a checkpoint is tensors and plain
        containers, so a crafted file cannot run code."""
        self.load_state_dict(load_checkpoint_state(path))
        self.rewrite_log()


def load_checkpoint_state(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's state dict, on the CPU, without unpickling any code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        found = re.search(r"GLOBAL (\S+)", str(error))
        if found is None:
            raise ValueError(
                f"{path}: not a readable checkpoint (corrupt, truncated or not "
                "written by torch.save)"
            ) from error
        raise ValueError(
            f"{path}: not a checkpoint of this library; it holds Python objects "
            f"({found.group(1)}) and was not unpickled, since that could run code"
        ) from error


def _log_writer(f: Any, row: dict[str, float]) -> csv.DictWriter:
    """A ``log.csv`` writer: the fixed columns first, then ``row``'s other keys
    (losses, modality weights) sorted."""
    fields = ["epoch", "seconds", "seeds", "loss", "hits@1", "hits@10", "mrr"]
    fields += sorted(k for k in row if k not in fields)
    return csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
