"""Oracles: who answers whether a selected pair is a true alignment link."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from almea_pyg.data.pair import link_keys

OracleName = Literal["simulated", "pseudo", "human"]


class OracleAnswer(NamedTuple):
    """Pairs an oracle accepted and rejected, each ``(2, n)``."""

    accepted: Tensor
    rejected: Tensor


class Oracle:
    """Answers a round's pairs ``(2, n)`` (source index, target index)."""

    name: str = "oracle"

    def answer(self, pairs: Tensor) -> OracleAnswer:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


class SimulatedOracle(Oracle):
    """Answers from the ground-truth links: a pair not among them is a "no".

    Args:
        links (torch.Tensor): The true links ``(2, L)`` it may reveal.
        num_targets (int): Target entity count (for the pair keys).
    """

    name = "simulated"

    def __init__(self, links: Tensor, num_targets: int) -> None:
        self.num_targets = num_targets
        self.keys = link_keys(links, num_targets)

    def answer(self, pairs: Tensor) -> OracleAnswer:
        true = torch.isin(
            link_keys(pairs, self.num_targets), self.keys.to(pairs.device)
        )
        return OracleAnswer(pairs[:, true], pairs[:, ~true])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.keys.numel()} links)"


class PseudoOracle(Oracle):
    """Accepts every pair unchecked: self-training on the model's own predictions,
    what the paper's public code does."""

    name = "pseudo"

    def answer(self, pairs: Tensor) -> OracleAnswer:
        return OracleAnswer(pairs, pairs[:, :0])


class HumanOracle(Oracle):
    """A person answers: the pairs are written to a CSV and the run stops.

    :class:`~almea_pyg.active.ActiveLearner` writes the request, checkpoints and
    stops; ``almea-pyg label import`` validates the filled file and the run
    resumes from the checkpoint.
    """

    name = "human"

    def answer(self, pairs: Tensor) -> OracleAnswer:
        raise RuntimeError("a human oracle's answers come from a label file")
