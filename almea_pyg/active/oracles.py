"""Oracles: who answers whether a selected pair is a true alignment link."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from almea_pyg.data.pair import MMKGPair, link_keys

OracleName = Literal["simulated", "pseudo", "human"]


class OracleAnswer(NamedTuple):
    """Pairs an oracle accepted and rejected, each ``(2, n)``."""

    accepted: Tensor
    rejected: Tensor


@dataclass
class PendingRound:
    """A round's question and, once given, its answer.

    Attributes:
        round: The round's number (1 for the first).
        pairs: The pairs asked, ``(2, n)``, most confident first.
        scores: Their similarity scores, ``(n,)``.
        select_seconds: Time the selection took.
        answer: The oracle's answer; ``None`` while a person has not given it.
    """

    round: int
    pairs: Tensor
    scores: Tensor
    select_seconds: float
    answer: OracleAnswer | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None

    def to(self, device: torch.device | str) -> PendingRound:
        answer = None
        if self.answer is not None:
            answer = OracleAnswer(*(links.to(device) for links in self.answer))
        return PendingRound(
            self.round,
            self.pairs.to(device),
            self.scores.to(device),
            self.select_seconds,
            answer,
        )

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only (what a ``weights_only`` checkpoint holds)."""
        state = {
            "round": self.round,
            "pairs": self.pairs,
            "scores": self.scores,
            "select_seconds": self.select_seconds,
        }
        if self.answer is not None:
            state.update(accepted=self.answer.accepted, rejected=self.answer.rejected)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], round: int) -> PendingRound:
        """Inverse of :meth:`state_dict`; ``round`` for checkpoints without it."""
        answer = None
        if "accepted" in state:
            answer = OracleAnswer(state["accepted"], state["rejected"])
        return cls(
            state.get("round", round),
            state["pairs"],
            state["scores"],
            state.get("select_seconds", 0.0),
            answer,
        )


class Oracle:
    """Answers a round's pairs ``(2, n)`` (source index, target index).

    :meth:`ask` returns the answer now, or ``None`` when it comes later (a
    person): the round then waits until :meth:`~almea_pyg.active.ActiveLearner.
    import_labels` gives it.
    """

    name: str = "oracle"
    #: Whether a "yes" is a true link (not a guess such as a pseudo-label): a
    #: test link it confirms is known from then on.
    reveals_truth: bool = True

    def answer(self, pairs: Tensor) -> OracleAnswer:
        raise NotImplementedError

    def ask(self, question: PendingRound) -> OracleAnswer | None:
        return self.answer(question.pairs)

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
    reveals_truth = False

    def answer(self, pairs: Tensor) -> OracleAnswer:
        return OracleAnswer(pairs, pairs[:, :0])


class HumanOracle(Oracle):
    """A person answers: the round's pairs go to a label file, and the run stops.

    :class:`~almea_pyg.active.ActiveLearner` checkpoints and stops;
    ``almea-pyg label import`` (or the learner's ``import_labels``) validates the
    filled file and the run resumes from the checkpoint.

    Args:
        pair (MMKGPair): The pair (identifiers and names for the file).
        directory (str): Where ``labels_round<N>.csv`` are written.
    """

    name = "human"

    def __init__(self, pair: MMKGPair, directory: str | os.PathLike) -> None:
        self.pair = pair
        self.directory = Path(directory)

    def label_path(self, round: int) -> Path:
        return self.directory / f"labels_round{round}.csv"

    def ask(self, question: PendingRound) -> OracleAnswer | None:
        from almea_pyg.active.labels import write_label_request

        write_label_request(
            self.label_path(question.round),
            self.pair,
            question.pairs,
            question.scores,
            question.round,
        )
        return None

    def answer(self, pairs: Tensor) -> OracleAnswer:
        raise RuntimeError("a human oracle's answers come from a label file")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.directory})"


#: ``factory(pair, output_dir)`` of each oracle name.
OracleFactory = Callable[[MMKGPair, "str | os.PathLike | None"], Oracle]
ORACLES: dict[str, OracleFactory] = {}


def register_oracle(name: str, factory: OracleFactory) -> None:
    """Make an oracle available by ``name`` (in configs and ``--oracle``)."""
    ORACLES[name] = factory


def _human(pair: MMKGPair, output_dir: str | os.PathLike | None) -> HumanOracle:
    if output_dir is None:
        raise ValueError("a human oracle needs an output directory for label files")
    return HumanOracle(pair, output_dir)


register_oracle(
    "simulated", lambda pair, _: SimulatedOracle(pair.links, pair.num_entities[1])
)
register_oracle("pseudo", lambda pair, _: PseudoOracle())
register_oracle("human", _human)


def oracle_resolver(
    oracle: str | Oracle,
    pair: MMKGPair,
    output_dir: str | os.PathLike | None = None,
) -> Oracle:
    """An oracle by name (see :data:`ORACLES`) or the instance given."""
    if isinstance(oracle, Oracle):
        return oracle
    if oracle not in ORACLES:
        raise ValueError(f"unknown oracle {oracle!r}: one of {sorted(ORACLES)}")
    return ORACLES[oracle](pair, output_dir)
