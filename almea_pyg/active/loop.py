"""The active-learning loop (Algorithm 2 of the paper) with resumable rounds."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from almea_pyg.active.labels import read_labels
from almea_pyg.active.oracles import (
    Oracle,
    OracleAnswer,
    OracleName,
    PendingRound,
    QuestionKind,
    SimulatedOracle,
    oracle_resolver,
)
from almea_pyg.data.pair import link_keys
from almea_pyg.io import atomic_save
from almea_pyg.metrics.similarity import topk_similarity
from almea_pyg.train.trainer import EpochCallback, Trainer, load_checkpoint_state

log = logging.getLogger(__name__)

#: The strategy name of the no-strategy baseline (random pool links revealed).
PASSIVE = "passive"
#: The strategy name of the no-label reference: rounds that ask nothing, so the
#: model trains exactly as many epochs as an active run without any new label.
NO_LABELS = "none"


def is_budget(value: float) -> bool:
    """Whether ``value`` is a round's budget: a fraction of the links in (0, 1)
    or a whole count >= 1."""
    return 0 < value < 1 or (value >= 1 and value == int(value))


@dataclass
class ActiveLearningConfig:
    """The schedule and choices of an active-learning run (Table 9 defaults).

    Attributes:
        warmup: Epochs before the first round (``T_warm``).
        interval: Epochs of training after each round (``T_inter``).
        rounds: Number of rounds (``T_r``).
        budget: Pairs asked per round: a fraction of all links if below 1,
            else a count. (default: 1 % of the links)
        threshold: Only ask pairs whose similarity score reaches this (``τ``).
        strategy: Acquisition strategy name (see :mod:`almea_pyg.select`), or
            ``"passive"``: no strategy, ``budget`` random true links of the pool
            revealed per round (what a labeller does without one; a baseline), or
            ``"none"``: nothing asked, the rounds' epochs trained on the seeds
            alone (the reference that trains exactly as long).
        strategy_kwargs: Keyword arguments of the strategy (e.g. ``alpha``).
        oracle: ``"simulated"``, ``"pseudo"`` or ``"human"``.
        transductive: Let test entities into the pool (the paper's code). Off:
            test entities never enter the pool, so no test link is revealed.
        question: ``"pair"`` (the paper's: is (a, b) a match?) or ``"entity"``
            (what is a's counterpart, or none? A source answered "none" leaves
            the pool).
        lr_decay: Round ``r`` trains at ``lr_decay ** r`` times the base
            learning rate. Not in the paper. (default: ``1.0``, constant)
        rewarmup: After each round's labels, the learning rate ramps back up
            linearly over this many epochs
            (:meth:`~almea_pyg.train.Trainer.schedule_lr`). Not in the paper.
            (default: ``0``)
    """

    warmup: int = 500
    interval: int = 50
    rounds: int = 5
    budget: float = 0.01
    threshold: float | None = None
    strategy: str = "ds3"
    strategy_kwargs: dict[str, Any] = field(default_factory=dict)
    oracle: OracleName = "simulated"
    transductive: bool = False
    question: QuestionKind = "pair"
    lr_decay: float = 1.0
    rewarmup: int = 0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.rounds < 0:
            raise ValueError(
                f"warmup and rounds must be >= 0, got {self.warmup} and {self.rounds}"
            )
        if self.question not in ("pair", "entity"):
            raise ValueError(
                f"question must be 'pair' or 'entity', got {self.question}"
            )
        if self.interval < 1:
            raise ValueError(f"interval must be at least 1 epoch, got {self.interval}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.rewarmup < 0:
            raise ValueError(f"rewarmup must be >= 0 epochs, got {self.rewarmup}")
        if not is_budget(self.budget):
            raise ValueError(
                "budget must be a fraction of the links in (0, 1) or a whole count "
                f">= 1, got {self.budget}"
            )

    def budget_count(self, num_links: int) -> int:
        return (
            int(self.budget)
            if self.budget >= 1
            else max(1, round(self.budget * num_links))
        )


def degrees(kg_edge_index: Tensor, num_nodes: int) -> Tensor:
    """Undirected degree of every entity (for the ``"degree"`` strategy)."""
    return torch.bincount(kg_edge_index.flatten(), minlength=num_nodes)


class ActiveLearner:
    r"""Runs the rounds of Algorithm 2 on a :class:`~almea_pyg.train.Trainer`:
    warm-up training, then per round: embeddings, a strategy's selection among
    the pool, the oracle's answers, the accepted pairs as new seed links, and
    ``interval`` more epochs, with an evaluation and a checkpoint after each.

    The pool never holds labelled entities nor pairs already answered "no".
    Unless ``transductive``, it never holds the entities of test (or validation)
    links either, so no oracle can reveal a test link. With ``transductive`` and
    an oracle that answers with the truth (simulated, or a person), revealed test
    links move from the trainer's test links to the seeds, and each round
    reports how many did; the pair itself is never changed.

    Args:
        trainer (Trainer): The trainer (model, pair, optimiser, seed links).
        config (ActiveLearningConfig): Schedule, strategy and oracle.
        output_dir (str, optional): Checkpoints and label files go here.
        oracle (Oracle, optional): An oracle instance to use instead of
            ``config.oracle``'s (see :func:`~almea_pyg.active.oracle_resolver`).
        seed (int): Seed of the strategy's randomness. (default: ``0``)
    """

    def __init__(
        self,
        trainer: Trainer,
        config: ActiveLearningConfig,
        *,
        output_dir: str | os.PathLike | None = None,
        oracle: Oracle | None = None,
        seed: int = 0,
    ) -> None:
        from almea_pyg.select import strategy_resolver

        self.trainer = trainer
        self.config = config
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.strategy = (
            None
            if config.strategy in (PASSIVE, NO_LABELS)
            else strategy_resolver(config.strategy, **config.strategy_kwargs)
        )
        self.oracle = oracle_resolver(oracle or config.oracle, trainer.pair, output_dir)
        self.generator = torch.Generator().manual_seed(seed)
        pair = trainer.pair
        self.num_targets = pair.num_entities[1]
        self.truth = SimulatedOracle(pair.links, self.num_targets)
        self.negatives = pair.links.new_empty(2, 0)
        #: Sources an entity question found without a counterpart.
        self.unmatched = pair.links.new_empty(0)
        self.rounds: list[dict[str, Any]] = []
        self.completed = 0
        self.pending: PendingRound | None = None
        #: The pairs asked in the latest round, ``(2, n)`` (for the selection map).
        self.last_asked = pair.links.new_empty(2, 0)
        self.test_links_removed = 0
        #: What the strategy reported on the latest selection (DS3: pool size and
        #: representatives), recorded with the round.
        self.selection: dict[str, Any] = {}
        self.source_degree, self.target_degree = (
            degrees(
                kg["entity", "relation", "entity"].edge_index, kg["entity"].num_nodes
            )
            for kg in (pair.source, pair.target)
        )

    @property
    def status(self) -> str:
        """``"warmup"``, ``"labels_pending"``, ``"running"`` or ``"done"``."""
        if self.pending is not None and not self.pending.answered:
            return "labels_pending"
        if self.completed >= self.config.rounds:
            return "done"
        return "warmup" if self.trainer.epoch < self.config.warmup else "running"

    def run(self, *, callback: EpochCallback | None = None) -> list[dict[str, Any]]:
        """Run (or resume) the remaining schedule; returns the per-round records.

        Stops early, with a checkpoint, when a human oracle's labels are pending
        (and returns at once while they still are). ``callback`` runs after every
        warm-up epoch (e.g. to checkpoint the long warm-up).
        """
        trainer = self.trainer
        if self.status == "labels_pending":
            log.info("round %d: labels still pending", self.completed + 1)
            return self.rounds
        if trainer.epoch < self.config.warmup:
            trainer.fit(self.config.warmup - trainer.epoch, callback=callback)
        if not self.rounds:
            self._record(asked=0, correct=0, select_seconds=0.0)
            self.save_checkpoint()
        while self.completed < self.config.rounds:
            if self.pending is None:
                self._ask()
                if self.status == "labels_pending":
                    self.save_checkpoint()
                    log.info(
                        "round %d: waiting for %r", self.pending.round, self.oracle
                    )
                    return self.rounds
            answered, self.pending = self.pending, None
            self.last_asked = answered.pairs
            correct, known = self._learn(answered)
            trainer.schedule_lr(
                scale=self.config.lr_decay ** (self.completed + 1),
                warmup=self.config.rewarmup,
            )
            trainer.fit(self.config.interval)
            self.completed += 1
            self._record(
                asked=answered.pairs.size(1),
                correct=correct,
                select_seconds=answered.select_seconds,
                gained=answered.answer.accepted.size(1),
                already_top1=known,
            )
            self.save_checkpoint()
        return self.rounds

    def pool_exclusions(self) -> tuple[Tensor, Tensor]:
        """Source and target entities kept out of the pool (beyond the labelled)."""
        pair = self.trainer.pair
        if self.config.transductive:
            empty = pair.links.new_empty(0)
            return self.unmatched, empty
        held_out = torch.cat([pair.test_links, pair.valid_links], dim=1)
        return torch.cat([held_out[0], self.unmatched]), held_out[1]

    def propose(self) -> tuple[Tensor, Tensor]:
        """The next round's question: pairs ``(2, n)`` and their scores ``(n,)``.

        The strategy's selection among the pool, less the pairs already answered
        "no" and those below the threshold, at most the round's budget.
        """
        return self._propose(*self.trainer.model.embed(self.trainer.inputs))

    def _propose(self, emb_s: Tensor, emb_t: Tensor) -> tuple[Tensor, Tensor]:
        trainer = self.trainer
        budget = self.config.budget_count(trainer.pair.links.size(1))
        if self.config.strategy == NO_LABELS:
            return trainer.train_links[:, :0], emb_s.new_empty(0)
        exclude_s, exclude_t = self.pool_exclusions()
        if self.strategy is None:
            return self._passive(budget, exclude_s, exclude_t, emb_s, emb_t)
        selection = self.strategy.select(
            emb_s,
            emb_t,
            trainer.train_links,
            budget + self.negatives.size(1),
            exclude_source=exclude_s,
            exclude_target=exclude_t,
            source_degree=self.source_degree,
            target_degree=self.target_degree,
            generator=self.generator,
        )
        self.selection = self.strategy.summary_
        pairs, scores = selection.pairs, selection.score
        fresh = ~torch.isin(
            link_keys(pairs, self.num_targets),
            link_keys(self.negatives, self.num_targets),
        )
        if self.config.threshold is not None:
            fresh &= scores >= self.config.threshold
        return pairs[:, fresh][:, :budget], scores[fresh][:budget]

    def _passive(
        self,
        budget: int,
        exclude_s: Tensor,
        exclude_t: Tensor,
        emb_s: Tensor,
        emb_t: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``budget`` random true links whose entities are in the pool."""
        trainer = self.trainer
        links = self.truth.links.to(trainer.train_links.device)
        out_s = torch.cat([exclude_s, trainer.train_links[0]])
        out_t = torch.cat([exclude_t, trainer.train_links[1]])
        links = links[:, ~torch.isin(links[0], out_s) & ~torch.isin(links[1], out_t)]
        order = torch.randperm(links.size(1), generator=self.generator)[:budget]
        pairs = links[:, order.to(links.device)]
        scores = F.cosine_similarity(emb_s[pairs[0]], emb_t[pairs[1]], dim=-1)
        return pairs, scores

    def _ask(self) -> None:
        """Select the round's pairs and put the question to the oracle."""
        start = time.perf_counter()
        emb_s, emb_t = self.trainer.model.embed(self.trainer.inputs)
        pairs, scores = self._propose(emb_s, emb_t)
        question = PendingRound(
            self.completed + 1,
            pairs,
            scores,
            time.perf_counter() - start,
            kind=self.config.question,
            top1=self._model_top1(emb_s, emb_t, pairs[0]),
        )
        if pairs.size(1) == 0:
            log.info("round %d: the pool has nothing left to ask", question.round)
            question.answer = OracleAnswer(pairs, pairs)
        elif self.strategy is None:
            question.answer = OracleAnswer(pairs, pairs[:, :0])  # revealed links
        else:
            question.answer = self.oracle.ask(question)
        self.pending = question

    def _model_top1(self, emb_s: Tensor, emb_t: Tensor, sources: Tensor) -> Tensor:
        """The model's best target for each of ``sources`` (evaluation metric)."""
        _, best = topk_similarity(emb_s[sources], emb_t, 1, metric=self.trainer.metric)
        return best[:, 0]

    def import_labels(self, path: str | os.PathLike) -> OracleAnswer:
        """Validate a filled label file against the pending round and keep its answers.

        Nothing changes if the file is rejected.
        """
        if self.pending is None:
            raise ValueError("no round is waiting for labels")
        pending = self.pending
        answer = read_labels(
            path, self.trainer.pair, asked=pending.pairs, question=pending.kind
        )
        pending.answer = answer
        return answer

    def _learn(self, answered: PendingRound) -> tuple[int, int]:
        """Add accepted pairs as seeds, remember rejected ones (and, for entity
        questions, sources without a counterpart); returns how many accepted
        pairs are true, and how many of those the model already ranked first."""
        trainer = self.trainer
        answer = answered.answer
        accepted = answer.accepted
        correct_mask = torch.isin(
            link_keys(accepted, self.num_targets), self.truth.keys
        )
        asked_true = int(correct_mask.sum())
        if self.config.transductive and self.oracle.reveals_truth:
            test_keys = link_keys(trainer.test_links, self.num_targets)
            revealed = torch.isin(test_keys, link_keys(accepted, self.num_targets))
            trainer.test_links = trainer.test_links[:, ~revealed]
            self.test_links_removed += int(revealed.sum())
        trainer.add_train_links(accepted)
        self.negatives = torch.cat([self.negatives, answer.rejected], dim=1)
        if answered.kind == "entity":
            # "none" is a rejection and no counterpart; unanswered sources stay.
            asked = answered.pairs[0]
            none = torch.isin(asked, answer.rejected[0].to(asked.device))
            none &= ~torch.isin(asked, accepted[0].to(asked.device))
            self.unmatched = torch.cat([self.unmatched, asked[none]])
        known = 0
        if answered.top1 is not None and accepted.numel():
            best = torch.stack([answered.pairs[0], answered.top1])
            true = accepted[:, correct_mask]
            known = int(
                torch.isin(
                    link_keys(true, self.num_targets),
                    link_keys(best, self.num_targets),
                ).sum()
            )
        return asked_true, known

    def _record(
        self,
        *,
        asked: int,
        correct: int,
        select_seconds: float | None,
        gained: int = 0,
        already_top1: int = 0,
    ) -> None:
        """One round's record: questions ``asked``, ``correct`` (true pairs among
        the accepted), links ``gained``, true links the model ``already_top1``
        ranked first when asked, and the evaluation."""
        metrics = self.trainer.evaluate()
        self.rounds.append(
            {
                "round": self.completed,
                "epoch": self.trainer.epoch,
                "asked": asked,
                "correct": correct,
                "gained": gained,
                "already_top1": already_top1,
                "question": self.config.question,
                "labelled": self.trainer.train_links.size(1),
                "negatives": self.negatives.size(1),
                "test_links": self.trainer.test_links.size(1),
                "select_seconds": select_seconds,
                "selection": self.selection,
                **metrics,
            }
        )
        log.info("round %d: %s", self.completed, self.rounds[-1])

    def state_dict(self) -> dict[str, Any]:
        return {
            "trainer": self.trainer.state_dict(),
            "config": asdict(self.config),
            "negatives": self.negatives,
            "unmatched": self.unmatched,
            "rounds": self.rounds,
            "completed": self.completed,
            "pending": None if self.pending is None else self.pending.state_dict(),
            "last_asked": self.last_asked,
            "generator": self.generator.get_state(),
            "test_links": self.trainer.test_links,
            "test_links_removed": self.test_links_removed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint of this class, or warm-start from a plain
        :class:`~almea_pyg.train.Trainer` checkpoint (a run without active
        learning: its epochs count towards the warm-up, no round has run)."""
        if "trainer" not in state:
            self.trainer.load_state_dict(state)
            return
        self.trainer.load_state_dict(state["trainer"])
        device = self.trainer.pair.links.device
        self.negatives = state["negatives"].to(device)
        self.unmatched = state.get("unmatched", self.unmatched).to(device)
        self.rounds = state["rounds"]
        self.completed = state["completed"]
        pending = state["pending"]
        self.pending = (
            None
            if pending is None
            else PendingRound.from_state_dict(pending, self.completed + 1).to(device)
        )
        self.last_asked = state["last_asked"].to(device)
        self.generator.set_state(state["generator"])
        self.trainer.test_links = state["test_links"].to(device)
        self.test_links_removed = state["test_links_removed"]

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Checkpoint everything (atomically) to ``path`` or ``output_dir``."""
        if path is None:
            if self.output_dir is None:
                return None
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / "checkpoint.pt"
        atomic_save(self.state_dict(), path)
        return Path(path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore ``path`` (see :meth:`load_state_dict`; loaded without
        unpickling code) and rewrite ``log.csv`` from the restored history."""
        self.load_state_dict(load_checkpoint_state(path))
        self.trainer.rewrite_log()
