import pytest

from almea_pyg.pipeline.experiment import VARIANTS as MODEL_VARIANTS
from almea_pyg.pipeline.variants import (
    HARNESS_VARIANTS,
    RELATIVE_ALPHA,
    Variant,
    resolve_variant,
)
from almea_pyg.select import STRATEGIES


def test_variant_table_covers_models_and_strategies():
    table = HARNESS_VARIANTS
    assert set(MODEL_VARIANTS) <= set(table)
    assert {f"almea+{s}" for s in STRATEGIES} <= set(table)
    assert {f"almea+{s}+entity" for s in STRATEGIES} <= set(table)
    assert table["base"].model == "base" and table["no_rel"].drop == "rel"
    pseudo = table["almea+ds3+pseudo"]
    assert (pseudo.oracle, pseudo.transductive) == ("pseudo", True)
    assert table["almea+random"].oracle == "simulated"
    assert not table["almea+random"].transductive
    assert table["almea+passive"].strategy == "passive"
    assert table["almea+none"].strategy == "none"
    relative = table["almea+ds3+relative+entity"]
    assert (relative.lam_rule, relative.alpha) == ("relative", RELATIVE_ALPHA)


def test_names_outside_the_table():
    assert resolve_variant("no_video") == Variant(
        "ALMEA w/o ACS without the video modality", drop="video"
    )
    with pytest.raises(ValueError, match="no_<modality>"):
        resolve_variant("almea+magic")
