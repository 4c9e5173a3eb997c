r"""Data-parallel training over processes with :mod:`torch.distributed`.

Launched with ``torchrun`` (one process per CPU share or per GPU; gloo on the
CPU, nccl on CUDA), :class:`DistributedTrainer` gives the result of one
:class:`~almea_pyg.train.Trainer` with the same global ``batch_size``, up to
floating-point summation order. How:

* **Forward replicated.** Every process holds the whole model and pair and runs
  the same forward for each global batch: the GAT over the full graph (in
  mini-batch training, ``fanouts``, over the batch's sampled neighbourhood: the
  same on every process with the library's sampler, which draws from the
  trainer's seeded generator; PyG's, where installed, draws from its own
  state) and the feature projections of all the batch's rows.
* **Loss split.** Each process computes only its contiguous share of the batch's
  seed pairs (:func:`shard`, ``model.loss(out, pairs)``): the in-batch InfoNCE
  and inter-modal terms of its pairs' rows and columns against all :math:`B`
  candidates of the batch (every process has every row, so the negatives are
  the global batch's without a differentiable ``all_gather``, which would save
  only the other rows' feature projections), and the LSL/LSC terms of its
  pairs, each divided by the global batch's counts. The shares sum to the
  one-process loss term by term, and by linearity so do their gradients.
* **Gradients summed.** :func:`all_reduce_gradients` sums ``.grad`` over the
  processes after backward; all of them then take the same clipped Adam step
  on the same bits, so the parameters stay identical.
* **Same random stream.** Every draw of a step is made for the whole batch on
  every process (GAT dropout over the full graph; LSL's masks and noise for all
  :math:`2B` rows, of which a share takes its own), and rank 0's torch random
  state is broadcast at the start and after loading a checkpoint; batches come
  from the trainer's seeded generator. The processes thus reproduce the draws of
  the one-process run, not merely draws of the same distribution.

This is an explicit gradient all-reduce rather than
:class:`~torch.nn.parallel.DistributedDataParallel`: ALMEA's loss runs outside
``forward``, a share may leave a parameter without a gradient (no pair of a
modality in it), and the latent chunks are recomputed in backward; DDP would
need ``find_unused_parameters`` and averaging undone for no gain here.

What is split ``W`` ways: the LSL/LSC block (the VAE and calibration passes,
their recomputation and backward), most of a step at ``d = 300`` (one share of
two costs ~0.6 of a whole step). The in-batch matrices cost
:math:`2 B^2 / W` entries per process against :math:`B^2` in one (no gain at two
processes). What is not: the full-graph GAT forward and backward, the feature
projections and the optimiser step run on every process, plus one all-reduce
of every gradient (the :math:`N \times d` entity table included) per step.
Memory is not divided: every process holds the whole graph. Evaluation runs on
every process alike (so callbacks that read metrics agree); rank 0 alone writes
``log.csv`` and checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from almea_pyg.data.pair import MMKGPair
from almea_pyg.train.trainer import Trainer

#: Bytes of gradients summed per collective.
BUCKET_BYTES = 32 << 20


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the process group ``torchrun`` describes in the environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``)
    and return this process's device.

    Args:
        backend (str, optional): ``"gloo"`` or ``"nccl"``. (default: ``"nccl"``
            where CUDA is available, else ``"gloo"``)

    Returns:
        ``cuda:LOCAL_RANK`` (made current) with nccl, else the CPU.
    """
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return device


def shard(num: int, rank: int, world_size: int, device: Any = None) -> Tensor:
    """The positions ``0 .. num - 1`` that process ``rank`` of ``world_size``
    owns: contiguous, sizes differing by at most one (empty when ``num <
    world_size`` leaves none)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    start = rank * num // world_size
    stop = (rank + 1) * num // world_size
    return torch.arange(start, stop, device=device)


def _buckets(params: list[Tensor], limit: int) -> Iterator[list[Tensor]]:
    """``params`` in order, in runs of one dtype of at most ``limit`` bytes (or
    one larger tensor)."""
    bucket: list[Tensor] = []
    size = 0
    for p in params:
        nbytes = p.numel() * p.element_size()
        if bucket and (size + nbytes > limit or p.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += nbytes
    if bucket:
        yield bucket


def all_reduce_gradients(
    parameters: Iterable[Tensor], *, bucket_bytes: int = BUCKET_BYTES
) -> None:
    """Sum the parameters' ``.grad`` over all processes, in place.

    A parameter that no process has a gradient for keeps ``None`` (Adam then
    leaves it alone, as in one process); one that some process has a gradient
    for gets the sum, the others counting zero. Every process ends with the
    same values. A sparse gradient (``nn.Embedding(sparse=True)``) is summed
    dense, as the processes' rows need not be the same.
    """
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.int32, device=params[0].device
    )
    dist.all_reduce(has_grad)
    params = [p for p, n in zip(params, has_grad.tolist()) if n > 0]
    for bucket in _buckets(params, bucket_bytes):
        flat = torch.cat(
            [
                (
                    p.grad.to_dense() if p.grad is not None else torch.zeros_like(p)
                ).reshape(-1)
                for p in bucket
            ]
        )
        dist.all_reduce(flat)
        for p, grad in zip(bucket, flat.split([p.numel() for p in bucket])):
            p.grad = grad.view_as(p)


def all_reduce_losses(losses: dict[str, Tensor]) -> dict[str, Tensor]:
    """The sums over all processes of detached scalar losses (same keys in the
    same order on every process), in one collective."""
    values = torch.stack([value.detach() for value in losses.values()])
    dist.all_reduce(values)
    return dict(zip(losses, values.unbind()))


def broadcast_module(module: nn.Module) -> None:
    """Give every process rank 0's parameters and buffers."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)


def broadcast_random_state() -> None:
    """Give every process rank 0's torch random state (the CPU's and, where
    CUDA is available, the current device's), so that all draw what rank 0
    draws."""
    cuda = torch.cuda.is_available()
    states = [torch.get_rng_state(), torch.cuda.get_rng_state() if cuda else None]
    dist.broadcast_object_list(states, src=0)
    torch.set_rng_state(states[0])
    if cuda:
        torch.cuda.set_rng_state(states[1])


class DistributedTrainer(Trainer):
    r"""A :class:`~almea_pyg.train.Trainer` that splits each batch of seed links
    over the processes of the default group (see the module docstring for why
    the result equals one process with the same global ``batch_size``).

    Every process builds it with the same pair and arguments; the model's
    parameters and torch's random state are taken from rank 0. The model's
    ``loss(out, pairs)`` must compute the share of ``pairs`` (positions in the
    batch) of its loss, as :meth:`~almea_pyg.models.ALMEA.loss` does. Only rank
    0 shows progress and writes ``log.csv`` and checkpoints; losses in the
    history are the global batch's.

    Args:
        model (nn.Module): The alignment model, on this process's device.
        pair (MMKGPair): The split pair, on the same device.
        **kwargs: :class:`~almea_pyg.train.Trainer`'s options; ``batch_size`` is
            the global batch.
    """

    def __init__(self, model: nn.Module, pair: MMKGPair, **kwargs: Any) -> None:
        if not dist.is_initialized():
            raise RuntimeError(
                "no process group: call init_distributed() first (under torchrun)"
            )
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        if self.rank != 0:
            kwargs["progress"] = False
        broadcast_module(model)
        broadcast_random_state()
        super().__init__(model, pair, **kwargs)

    def _backward(self, batch: Tensor, step: int) -> dict[str, Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        out = self._forward(batch)
        pairs = shard(batch.size(1), self.rank, self.world_size, batch.device)
        losses = self.model.loss(out, pairs)
        losses["loss"].backward()
        all_reduce_gradients(self.model.parameters())
        losses = all_reduce_losses(losses)
        self._check_finite("loss", losses["loss"], step)
        return losses

    def _log(self, row: dict[str, float]) -> None:
        if self.rank == 0:
            super()._log(row)

    def rewrite_log(self) -> None:
        if self.rank == 0:
            super().rewrite_log()

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Rank 0 saves (see :meth:`Trainer.save_checkpoint`); every process
        returns once the file is written, with its path."""
        if path is None and self.output_dir is None:
            raise ValueError("no path given and the trainer has no output_dir")
        if path is None:
            path = self.output_dir / "checkpoint.pt"
        if self.rank == 0:
            super().save_checkpoint(path)
        dist.barrier()
        return Path(path)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """As :meth:`Trainer.load_state_dict`, then rank 0's random state for
        all (a checkpoint holds per-device CUDA states, which would differ)."""
        super().load_state_dict(state)
        broadcast_random_state()
