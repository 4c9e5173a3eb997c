"""The variants a grid runs, by name: model variants, modality ablations and
active-learning strategies with their oracle and protocol.

A name such as ``"almea+ds3"`` stands for a :class:`Variant`; :func:`resolve_variant`
also reads ``no_<modality>`` and ``almea+<strategy>`` of strategies registered
after import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from almea_pyg.active.loop import NO_LABELS, PASSIVE
from almea_pyg.pipeline.experiment import VARIANTS
from almea_pyg.select import STRATEGIES
from almea_pyg.typing import PAPER_MODALITIES

#: DS3's α under the relative λ rule: ~4 % of a 1,000-pair pool kept as
#: representatives (docs/ds3.md).
RELATIVE_ALPHA = 0.02


@dataclass(frozen=True)
class Variant:
    """What a harness variant name runs.

    Attributes:
        description: The variant in words (and the paper row it stands for).
        model: A key of :data:`~almea_pyg.pipeline.experiment.VARIANTS`.
        drop: The modality left out of the model (a modality ablation).
        strategy: Active learning with this strategy when set.
        oracle: The oracle of the active-learning rounds.
        transductive: Test entities in the candidate pool (the paper's code).
        question: ``"pair"`` or ``"entity"`` (see :class:`ActiveLearningConfig`).
        lam_rule: DS3's λ rule (:func:`almea_pyg.select.ds3.ds3`).
        alpha: DS3's α of this variant (else Table 9's, or the grid's ``alpha``).
    """

    description: str
    model: str = "almea"
    drop: str | None = None
    strategy: str | None = None
    oracle: str = "simulated"
    transductive: bool = False
    question: str = "pair"
    lam_rule: str = "paper"
    alpha: float | None = None


_MODEL_NOTES = {
    "almea": "ALMEA w/o ACS (Table 1)",
    "base": "base model: no LSL, hence no LSC (Table 2 'w/o LSL')",
    "no_lsc": "ALMEA w/o ACS without LSC (Table 2)",
    "no_scl": "ALMEA w/o ACS without L_SCL (Table 2)",
    "no_dml": "ALMEA w/o ACS without L_DML (Table 2)",
    "no_url": "ALMEA w/o ACS without L_URL (Table 2)",
    "no_jal": "ALMEA w/o ACS without L_JAL (Table 2)",
}

#: Every variant the harness runs, by name. Besides these, ``no_<modality>``
#: drops any modality a pair has.
HARNESS_VARIANTS: dict[str, Variant] = {
    **{
        name: Variant(_MODEL_NOTES.get(name, f"model variant {name}"), model=name)
        for name in VARIANTS
    },
    **{
        f"no_{modality}": Variant(
            f"ALMEA w/o ACS without the {modality} modality (Table 2)", drop=modality
        )
        for modality in PAPER_MODALITIES
    },
    **{
        f"almea+{strategy}": Variant(
            f"ALMEA with {strategy} selection, simulated oracle, test entities "
            "kept out of the pool (no leak)",
            strategy=strategy,
        )
        for strategy in sorted(STRATEGIES)
    },
    **{
        f"almea+{strategy}+entity": Variant(
            f"ALMEA with {strategy} selection, entity questions (what is a's "
            "counterpart?), simulated oracle, no leak",
            strategy=strategy,
            question="entity",
        )
        for strategy in sorted(STRATEGIES)
    },
    "almea+passive": Variant(
        "no strategy: the budget's worth of random true pool links revealed per "
        "round (the baseline), no leak",
        strategy=PASSIVE,
    ),
    "almea+none": Variant(
        "no labels: the rounds' epochs trained on the seeds alone (the reference "
        "that trains exactly as long)",
        strategy=NO_LABELS,
    ),
    "almea+ds3+relative": Variant(
        f"ALMEA with DS3 at λ = α·λ_max, α = {RELATIVE_ALPHA} (a rule that "
        "sparsifies at every pool size), simulated oracle, no leak",
        strategy="ds3",
        lam_rule="relative",
        alpha=RELATIVE_ALPHA,
    ),
    "almea+ds3+relative+entity": Variant(
        f"ALMEA with DS3 at λ = α·λ_max, α = {RELATIVE_ALPHA}, entity questions, "
        "simulated oracle, no leak",
        strategy="ds3",
        lam_rule="relative",
        alpha=RELATIVE_ALPHA,
        question="entity",
    ),
    "almea+ds3+pseudo": Variant(
        "ALMEA as the paper's code runs it: DS3, pseudo oracle, transductive pool",
        strategy="ds3",
        oracle="pseudo",
        transductive=True,
    ),
}


def resolve_variant(name: str) -> Variant:
    """The :class:`Variant` of ``name``; unknown names raise with the valid ones."""
    if name in HARNESS_VARIANTS:
        return HARNESS_VARIANTS[name]
    match = re.fullmatch(r"almea\+(\w+)", name)
    if match and match[1] in STRATEGIES:  # a strategy registered after import
        return Variant(f"ALMEA with {match[1]} selection", strategy=match[1])
    match = re.fullmatch(r"no_(\w+)", name)
    if match:
        return Variant(f"ALMEA w/o ACS without the {match[1]} modality", drop=match[1])
    raise ValueError(
        f"unknown variant {name!r}: one of {sorted(HARNESS_VARIANTS)} or no_<modality>"
    )
