import torch

from almea_pyg.models import impute_modalities
from almea_pyg.nn import LatentSemanticCalibration, LatentSemanticLearning

MODALITIES = ["graph", "img", "rel"]
DIM = 8


def modules():
    torch.manual_seed(0)
    lsl = LatentSemanticLearning(MODALITIES, DIM).eval()
    lsc = LatentSemanticCalibration(MODALITIES, DIM).eval()
    return lsl, lsc


def test_only_missing_modalities_are_replaced():
    lsl, lsc = modules()
    h = {m: torch.randn(5, DIM) for m in MODALITIES}
    present = {
        "graph": torch.ones(5, dtype=torch.bool),
        "img": torch.tensor([True, False, True, False, True]),
        "rel": torch.tensor([True, True, False, False, True]),
    }
    out = impute_modalities(h, present, lsl=lsl, lsc=lsc)
    for m in MODALITIES:
        assert torch.equal(out[m][present[m]], h[m][present[m]])
    # Entity 3 has only the graph: its image and relations come from the graph's
    # calibrated latent (its fused latent, the only modality it has).
    with torch.no_grad():
        z = lsc.calibrated("graph", lsl.encode("graph", h["graph"][3:4])[1])
        for m in ("img", "rel"):
            torch.testing.assert_close(out[m][3:4], lsl.decode(m, z))
    assert not torch.equal(out["img"][1], h["img"][1])


def test_complete_entities_come_back_unchanged():
    lsl, lsc = modules()
    h = {m: torch.randn(4, DIM) for m in MODALITIES}
    present = {m: torch.ones(4, dtype=torch.bool) for m in MODALITIES}
    assert impute_modalities(h, present, lsl=lsl, lsc=lsc) is h
