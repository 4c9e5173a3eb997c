import csv

import pytest
import torch

from almea_pyg.active import (
    ORACLES,
    ActiveLearner,
    ActiveLearningConfig,
    Oracle,
    OracleAnswer,
    PendingRound,
    register_oracle,
)
from almea_pyg.data import DataFormatError, make_synthetic_pair
from almea_pyg.data.pair import link_keys
from almea_pyg.models import ALMEA
from almea_pyg.select import Selection, Strategy
from almea_pyg.train import Trainer


@pytest.fixture()
def pair():
    return make_synthetic_pair(num_entities=150, seed=3).split(0.3, seed=0)


def seeds(pair):
    return pair.train_links.size(1)


def learner(pair, tmp_path=None, **config):
    torch.manual_seed(0)
    model = ALMEA.from_pair(pair, dim=8)
    trainer = Trainer(model, pair, progress=False, batch_size=64, lr=1e-2)
    defaults = dict(warmup=2, interval=1, rounds=2, budget=5)
    defaults.update(config)
    return ActiveLearner(trainer, ActiveLearningConfig(**defaults), output_dir=tmp_path)


def test_schedule_fires_on_the_right_epochs(pair):
    rounds = learner(pair, strategy="random", oracle="pseudo", transductive=True).run()
    assert [r["epoch"] for r in rounds] == [2, 3, 4]
    assert [r["asked"] for r in rounds] == [0, 5, 5]
    n = seeds(pair)
    assert [r["labelled"] for r in rounds] == [n, n + 5, n + 10]
    assert {"hits@1", "hits@10", "mrr", "correct"} <= set(rounds[-1])
    assert rounds[0]["select_seconds"] == 0.0 and rounds[-1]["select_seconds"] > 0


@pytest.mark.parametrize(
    "strategy", ["ds3", "random", "uncertainty", "degree", "coreset"]
)
def test_default_protocol_never_reveals_test_links(pair, strategy):
    test_keys = link_keys(pair.test_links, pair.num_entities[1])
    al = learner(pair, strategy=strategy, oracle="simulated", budget=10)
    al.run()
    labelled = link_keys(al.trainer.train_links, pair.num_entities[1])
    assert not torch.isin(labelled, test_keys).any()
    held = set(pair.test_links[0].tolist())
    asked = al.negatives[0].tolist() + al.trainer.train_links[0, seeds(pair) :].tolist()
    assert not held & set(asked)
    assert al.trainer.test_links.size(1) == pair.test_links.size(1)


def test_held_out_pool_links_are_found_without_touching_test_links():
    # With a pool share, the no-leak pool holds entities with true partners: the
    # simulated oracle confirms some, and still never a test link.
    base = make_synthetic_pair(num_entities=150, seed=3)
    pair = base.split(0.3, seed=0, pool_ratio=0.3)
    hidden = link_keys(pair.links, pair.num_entities[1])
    shown = link_keys(
        torch.cat([pair.train_links, pair.test_links], dim=1), pair.num_entities[1]
    )
    pool_keys = hidden[~torch.isin(hidden, shown)]
    al = learner(pair, strategy="random", oracle="simulated", budget=10, rounds=3)
    rounds = al.run()
    learned = link_keys(al.trainer.train_links[:, seeds(pair) :], pair.num_entities[1])
    assert sum(r["correct"] for r in rounds) == learned.numel() > 0
    assert torch.isin(learned, pool_keys).all()
    test_keys = link_keys(pair.test_links, pair.num_entities[1])
    assert not torch.isin(learned, test_keys).any()


class HalfRight(Strategy):
    """Proposes test links of selectable entities, every second one corrupted."""

    def __init__(self, links):
        super().__init__()
        self.links = links

    def _select(self, ctx):
        ok = torch.isin(self.links[0], ctx.source_candidates)
        ok &= torch.isin(self.links[1], ctx.target_candidates)
        pairs = self.links[:, ok][:, : ctx.budget].clone()
        pairs[1, 1::2] = pairs[1, 1::2].roll(1)
        return Selection(pairs[0], pairs[1], torch.ones(pairs.size(1)))


def test_simulated_transductive_moves_revealed_links_out_of_test(pair):
    before = pair.test_links.size(1)
    al = learner(
        pair,
        strategy=HalfRight(pair.test_links),
        oracle="simulated",
        transductive=True,
        budget=6,
    )
    rounds = al.run()
    assert [r["correct"] for r in rounds] == [0, 3, 3]
    assert al.test_links_removed == 6
    assert rounds[-1]["test_links"] == before - 6
    assert al.negatives.size(1) == 6
    negatives = link_keys(al.negatives, pair.num_entities[1])
    assert not torch.isin(negatives, link_keys(pair.links, pair.num_entities[1])).any()
    kept = link_keys(al.trainer.test_links, pair.num_entities[1])
    learned = link_keys(al.trainer.train_links, pair.num_entities[1])
    assert not torch.isin(kept, learned).any()
    assert pair.test_links.size(1) == before  # the caller's pair is untouched


def fill_from_truth(path, pair):
    truth = {(s, t) for s, t in pair.links.t().tolist()}
    src = {e: i for i, e in enumerate(pair.source["entity"].ids)}
    tgt = {e: i for i, e in enumerate(pair.target["entity"].ids)}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        key = (src[row["source_id"]], tgt[row["target_id"]])
        row["label"] = "yes" if key in truth else "no"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return sum(row["label"] == "yes" for row in rows)


def test_human_round_trip_with_a_malformed_file(pair, tmp_path):
    al = learner(
        pair, tmp_path, strategy="uncertainty", oracle="human", transductive=True
    )
    al.run()
    assert al.status == "labels_pending"
    path = tmp_path / "labels_round1.csv"
    checkpoint = (tmp_path / "checkpoint.pt").read_bytes()
    assert al.run() == al.rounds and al.status == "labels_pending"  # still waiting
    yes = fill_from_truth(path, pair)
    good = path.read_text()
    lines = good.splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",perhaps"
    path.write_text("\n".join(lines) + "\n")
    resumed = learner(
        pair, tmp_path, strategy="uncertainty", oracle="human", transductive=True
    )
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    with pytest.raises(DataFormatError, match="labels_round1.csv:3"):
        resumed.import_labels(path)
    assert resumed.status == "labels_pending"
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint
    path.write_text(good)
    resumed.import_labels(path)
    resumed.save_checkpoint()
    again = learner(
        pair, tmp_path, strategy="uncertainty", oracle="human", transductive=True
    )
    again.load_checkpoint(tmp_path / "checkpoint.pt")
    again.run()
    assert again.rounds[1]["asked"] == 5 and again.rounds[1]["correct"] == yes
    assert again.rounds[1]["labelled"] == seeds(pair) + yes
    assert again.status == "labels_pending" and again.completed == 1
    assert (tmp_path / "labels_round2.csv").exists()


def test_resume_equals_uninterrupted(pair, tmp_path):
    config = dict(strategy="random", oracle="simulated", transductive=True, rounds=3)
    straight = learner(pair, **config)
    straight.run()
    first = learner(pair, tmp_path, **{**config, "rounds": 1})
    first.run()
    resumed = learner(pair, tmp_path, **config)
    torch.manual_seed(99)
    resumed.load_checkpoint(tmp_path / "checkpoint.pt")
    resumed.run()
    assert torch.equal(resumed.trainer.train_links, straight.trainer.train_links)
    assert torch.equal(resumed.negatives, straight.negatives)
    assert resumed.rounds[-1]["mrr"] == straight.rounds[-1]["mrr"]


def test_rounds_decay_and_rewarm_the_learning_rate(pair):
    al = learner(pair, strategy="none", interval=2, rounds=2, lr_decay=0.5, rewarmup=1)
    al.run()
    lrs = [row["lr"] for row in al.trainer.history]
    # warm-up at 1e-2; each round starts at half its rate, then its rate
    assert lrs == pytest.approx([1e-2, 1e-2, 2.5e-3, 5e-3, 1.25e-3, 2.5e-3])


def test_callback_runs_on_warmup_epochs_only(pair):
    al = learner(pair, strategy="random", oracle="pseudo", transductive=True)
    seen = []
    al.run(callback=lambda trainer: seen.append(trainer.epoch))
    assert seen == [1, 2] and al.trainer.epoch == 4


@pytest.mark.parametrize(
    "config, message",
    [
        ({"budget": 0}, "budget"),
        ({"budget": 2.5}, "budget"),
        ({"interval": 0}, "interval"),
        ({"rounds": -1}, "rounds"),
        ({"lr_decay": 0.0}, "lr_decay"),
        ({"lr_decay": 1.5}, "lr_decay"),
        ({"rewarmup": -1}, "rewarmup"),
    ],
)
def test_config_refuses_impossible_schedules(config, message):
    with pytest.raises(ValueError, match=message):
        ActiveLearningConfig(**config)


class CountingOracle(Oracle):
    """Says yes to the first pair of each round; any user oracle looks like this."""

    def __init__(self):
        self.asked = []

    def answer(self, pairs):
        self.asked.append(pairs.size(1))
        return OracleAnswer(pairs[:, :1], pairs[:, 1:])


def test_an_oracle_instance_or_a_registered_name(pair):
    oracle = CountingOracle()
    al = learner(pair, strategy="random", transductive=True)
    al = ActiveLearner(al.trainer, al.config, oracle=oracle)
    rounds = al.run()
    assert oracle.asked == [5, 5] and [r["asked"] for r in rounds] == [0, 5, 5]
    assert rounds[-1]["labelled"] == seeds(pair) + 2
    register_oracle("counting", lambda pair, output_dir: CountingOracle())
    try:
        named = learner(pair, strategy="random", oracle="counting")
        assert isinstance(named.oracle, CountingOracle)
    finally:
        del ORACLES["counting"]
    with pytest.raises(ValueError, match="unknown oracle 'nope'"):
        learner(pair, oracle="nope")


def test_pending_round_is_typed_and_checkpointed(pair, tmp_path):
    al = learner(
        pair, tmp_path, strategy="uncertainty", oracle="human", transductive=True
    )
    al.run()
    pending = al.pending
    assert isinstance(pending, PendingRound) and not pending.answered
    assert pending.round == 1 and pending.pairs.size(1) == 5
    assert pending.scores.shape == (5,)
    again = learner(
        pair, tmp_path, strategy="uncertainty", oracle="human", transductive=True
    )
    again.load_checkpoint(tmp_path / "checkpoint.pt")
    assert torch.equal(again.pending.pairs, pending.pairs)
    assert again.pending.round == 1 and again.status == "labels_pending"


@pytest.fixture()
def pool_pair():
    base = make_synthetic_pair(num_entities=150, seed=3)
    return base.split(0.3, seed=0, pool_ratio=0.3)


def pool_keys(pair):
    hidden = link_keys(pair.links, pair.num_entities[1])
    shown = link_keys(
        torch.cat([pair.train_links, pair.test_links], dim=1), pair.num_entities[1]
    )
    return hidden[~torch.isin(hidden, shown)]


def test_entity_question_reveals_counterparts_and_drops_unmatched(pool_pair):
    al = learner(pool_pair, strategy="random", question="entity", budget=8)
    rounds = al.run()
    learned = al.trainer.train_links[:, seeds(pool_pair) :]
    # every answer is a true counterpart, and only pool links can be revealed
    assert torch.isin(
        link_keys(learned, pool_pair.num_entities[1]), pool_keys(pool_pair)
    ).all()
    assert [r["question"] for r in rounds] == ["entity"] * 3
    assert sum(r["gained"] for r in rounds) == learned.size(1) > 0
    assert all(r["correct"] == r["gained"] for r in rounds)
    # sources answered "none" are never asked again
    unmatched = set(al.unmatched.tolist())
    assert unmatched and not unmatched & set(pool_pair.links[0].tolist())
    asked_last = al.last_asked[0].tolist()
    assert len(asked_last) == len(set(asked_last))


def test_passive_reveals_random_pool_links(pool_pair):
    al = learner(pool_pair, strategy="passive", budget=6)
    rounds = al.run()
    assert [(r["asked"], r["correct"], r["gained"]) for r in rounds[1:]] == [
        (6, 6, 6),
        (6, 6, 6),
    ]
    learned = al.trainer.train_links[:, seeds(pool_pair) :]
    assert torch.isin(
        link_keys(learned, pool_pair.num_entities[1]), pool_keys(pool_pair)
    ).all()


def test_no_label_reference_trains_the_rounds_on_the_seeds(pool_pair):
    al = learner(pool_pair, strategy="none", budget=6)
    rounds = al.run()
    assert [r["epoch"] for r in rounds] == [2, 3, 4]
    assert [(r["asked"], r["gained"]) for r in rounds] == [(0, 0)] * 3
    assert al.trainer.train_links.size(1) == seeds(pool_pair)


def test_ds3_rounds_record_pool_and_representatives(pool_pair):
    rounds = learner(pool_pair, strategy="ds3", budget=6).run()
    assert rounds[0]["selection"] == {}
    for record in rounds[1:]:
        selection = record["selection"]
        assert 0 < selection["representatives"] <= selection["pool"]
        assert record["asked"] <= min(6, selection["representatives"])
    passive = learner(pool_pair, strategy="passive", budget=6, rounds=1).run()
    assert passive[1]["selection"] == {}


def test_already_top1_counts_true_answers_the_model_knew(pool_pair, monkeypatch):
    al = learner(pool_pair, strategy="random", budget=10, rounds=1)
    truth = dict(zip(*pool_pair.links.tolist()))
    monkeypatch.setattr(
        al,
        "_model_top1",
        lambda emb_s, emb_t, sources: torch.tensor(
            [truth.get(s, -1) for s in sources.tolist()]
        ),
    )
    rounds = al.run()
    assert rounds[1]["already_top1"] == rounds[1]["correct"]


def test_a_person_answers_entity_questions(pool_pair, tmp_path):
    """A counterpart named in the label file is learned, a "no" (none) leaves the
    pool, an unanswered source stays in it."""
    config = dict(strategy="random", question="entity", oracle="human", rounds=1)
    al = learner(pool_pair, tmp_path, budget=12, **config)
    al.run()
    asked = al.pending.pairs
    counterpart = dict(zip(*pool_pair.links.tolist()))
    path = tmp_path / "labels_round1.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    none, unanswered = [], []
    for row, s in zip(rows, asked[0].tolist()):
        if s in counterpart:
            row["target_id"] = pool_pair.target["entity"].ids[counterpart[s]]
            row["label"] = "yes"
        elif len(none) <= len(unanswered):
            none.append(s)
            row["label"] = "no"
        else:
            unanswered.append(s)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    answer = al.import_labels(path)
    found = [s for s in asked[0].tolist() if s in counterpart]
    assert answer.accepted[0].tolist() == found and none and unanswered
    rounds = al.run()
    assert rounds[-1]["gained"] == rounds[-1]["correct"] == len(found) > 0
    assert sorted(al.unmatched.tolist()) == sorted(none)
    learned = set(map(tuple, al.trainer.train_links.t().tolist()))
    assert {(s, counterpart[s]) for s in found} <= learned
