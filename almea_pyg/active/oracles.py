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
#: ``"pair"``: is (a, b) a match? ``"entity"``: what is a's counterpart, or none?
QuestionKind = Literal["pair", "entity"]


class OracleAnswer(NamedTuple):
    """Pairs an oracle accepted and rejected, each ``(2, n)``."""

    accepted: Tensor
    rejected: Tensor


def _first_of_each(values: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct ``values`` and the position of each one's first occurrence."""
    unique, inverse = torch.unique(values, return_inverse=True)
    positions = torch.arange(values.numel(), device=values.device)
    first = torch.full_like(unique, values.numel()).scatter_reduce(
        0, inverse, positions, reduce="amin"
    )
    return unique, first


@dataclass
class PendingRound:
    """A round's question and, once given, its answer.

    Attributes:
        round: The round's number (1 for the first).
        pairs: The pairs asked, ``(2, n)``, most confident first.
        scores: Their similarity scores, ``(n,)``.
        select_seconds: Time the selection took.
        answer: The oracle's answer; ``None`` while a person has not given it.
        kind: The kind of question (``"pair"`` or ``"entity"``: then only the
            sources of ``pairs`` are asked about).
        top1: The model's best target for each asked source when it was asked,
            ``(n,)`` (to count answers the model already knew).
    """

    round: int
    pairs: Tensor
    scores: Tensor
    select_seconds: float
    answer: OracleAnswer | None = None
    kind: QuestionKind = "pair"
    top1: Tensor | None = None

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
            self.kind,
            None if self.top1 is None else self.top1.to(device),
        )

    def state_dict(self) -> dict[str, Any]:
        """Tensors and numbers only (what a ``weights_only`` checkpoint holds)."""
        state = {
            "round": self.round,
            "pairs": self.pairs,
            "scores": self.scores,
            "select_seconds": self.select_seconds,
            "kind": self.kind,
        }
        if self.top1 is not None:
            state["top1"] = self.top1
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
            state.get("kind", "pair"),
            state.get("top1"),
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

    def counterparts(self, sources: Tensor) -> Tensor:
        """The entity question: the true links ``(2, k)`` of those ``sources``
        that have a counterpart (one per source)."""
        raise ValueError(f"{self!r} answers pair questions only")

    def ask(self, question: PendingRound) -> OracleAnswer | None:
        """The answer to ``question``. For an entity question, the accepted
        pairs are the counterparts found and the rejected ones the proposed
        pairs that were wrong."""
        if question.kind == "pair":
            return self.answer(question.pairs)
        found = self.counterparts(question.pairs[0])
        num_targets = int(question.pairs[1].max()) + 1
        if found.numel():
            num_targets = max(num_targets, int(found[1].max()) + 1)
        right = torch.isin(
            link_keys(question.pairs, num_targets), link_keys(found, num_targets)
        )
        return OracleAnswer(found, question.pairs[:, ~right])

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
        self.links = links

    def answer(self, pairs: Tensor) -> OracleAnswer:
        true = torch.isin(
            link_keys(pairs, self.num_targets), self.keys.to(pairs.device)
        )
        return OracleAnswer(pairs[:, true], pairs[:, ~true])

    def counterparts(self, sources: Tensor) -> Tensor:
        links = self.links.to(sources.device)
        found = links[:, torch.isin(links[0], sources)]
        _, first = _first_of_each(found[0])
        return found[:, first]

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
