"""A run's controlled missing modality (almea_pyg.pipeline.missing_modality)."""

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from almea_pyg.data import DropModality, make_synthetic_pair
from almea_pyg.data.pair import modality_mask
from almea_pyg.metrics import evaluate_alignment
from almea_pyg.pipeline.experiment import (
    ExperimentConfig,
    prepare_pair,
    run_experiment,
    split_pair,
)
from almea_pyg.pipeline.missing_modality import fill_r2, lost_entities, split_ranking
from almea_pyg.pipeline.run_folder import data_fingerprint

#: Recorded at commit fe2b67a, before the missing-modality settings existed (one
#: thread, torch 2.13 on CPU, AVX2 kernels), by the run of the first test; the
#: ``.avx512`` record is that run under AVX-512 kernels at commit 0625858.
REFERENCE = Path(__file__).with_name("default_run_reference.json")


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=80, seed=1)


def sides(pair):
    return (pair.source, pair.target)


def test_a_default_run_is_the_run_of_before(one_thread, tmp_path, cpu_reference):
    reference = json.loads(cpu_reference(REFERENCE).read_text())
    config = ExperimentConfig(
        epochs=10, lr=1e-2, model={"dim": 16}, progress=False, output=str(tmp_path)
    )
    result = run_experiment(config)
    assert result["metrics"].keys() == reference["metrics"].keys()
    for metric, values in reference["metrics"].items():
        assert result["metrics"][metric] == pytest.approx(values, rel=1e-6), metric
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["fingerprint"] == reference["fingerprint"]  # its folder resumes
    protocol = result["protocol"]
    assert (protocol["removed_modality"], protocol["removed_fraction"]) == (None, 0.0)
    assert (protocol["fill"], protocol["imputer"]) == ("zero", None)
    assert result["missing_modality"] is None


def test_a_run_trains_on_its_pair_with_the_modality_removed_then_filled():
    config = ExperimentConfig(seed=3, drop_modality="img", drop_fraction=0.4)
    original = split_pair(config)
    dropped = prepare_pair(config)
    expected = DropModality("img", 0.4, seed=3)(original)
    for got, want in zip(sides(dropped), sides(expected)):
        assert torch.equal(got["entity"].x_img, want["entity"].x_img)
        assert torch.equal(modality_mask(got, "img"), modality_mask(want, "img"))
    assert torch.equal(dropped.test_links, original.test_links)
    filled = prepare_pair(replace(config, fill="mean"))
    for kg, before in zip(sides(filled), sides(dropped)):
        observed = modality_mask(before, "img")
        x = kg["entity"].x_img
        assert torch.allclose(x[~observed], before["entity"].x_img[observed].mean(0))
        # every modality an entity lacks is filled, as LSL imputes every one
        assert modality_mask(kg, "img").all() and modality_mask(kg, "attr").all()
    default = ExperimentConfig()
    assert data_fingerprint(prepare_pair(default)) == data_fingerprint(
        split_pair(default)
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"drop_fraction": 0.4}, "drop_fraction 0.4 needs a drop_modality"),
        ({"drop_modality": "img", "drop_fraction": 1.5}, "fraction must be in"),
        ({"drop_modality": "text", "drop_fraction": 0.2}, "no modality 'text'"),
        ({"fill": "median"}, "method must be one of"),
    ],
)
def test_settings_that_make_no_removal_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        prepare_pair(ExperimentConfig(**changes))


def test_lost_entities_had_the_modality_and_lost_it(pair):
    drop = DropModality("img", 0.5, seed=1)
    lost = lost_entities(pair, drop)
    dropped = drop(pair)
    for before, after, mask in zip(sides(pair), sides(dropped), lost):
        expected = modality_mask(before, "img") & ~modality_mask(after, "img")
        assert torch.equal(mask, expected)
    drawn = sum(
        drop.dropped(kg["entity"].num_nodes, s).numel()
        for s, kg in enumerate(sides(pair))
    )
    assert 0 < sum(int(mask.sum()) for mask in lost) < drawn  # some lacked it


def test_links_are_split_but_ranked_against_all_targets():
    emb_t = torch.eye(6)
    emb_s = torch.eye(6)
    emb_s[4] = emb_t[0] + 0.5 * emb_t[4]  # nearest to target 0, of an unhit link
    emb_s[5] = emb_t[1] + 0.5 * emb_t[5]
    links = torch.arange(6).repeat(2, 1)
    affected = torch.tensor([False] * 4 + [True] * 2)
    out = split_ranking(emb_s, emb_t, links, {"affected": affected, "rest": ~affected})
    assert out["rest"]["cosine"] == {"hits@1": 100.0, "hits@10": 100.0, "mrr": 100.0}
    assert out["affected"]["cosine"] == {"hits@1": 0.0, "hits@10": 100.0, "mrr": 50.0}
    # CSLS with the neighbourhoods of the full ranking: the parts make the whole
    whole = evaluate_alignment(emb_s, emb_t, links, metric="csls")
    parts = out["affected"]["csls"], out["rest"]["csls"]
    for key, value in whole.items():
        assert (2 * parts[0][key] + 4 * parts[1][key]) / 6 == pytest.approx(value)
    none = split_ranking(emb_s, emb_t, links, {"affected": torch.zeros(6, dtype=bool)})
    assert none["affected"]["csls"] == {"hits@1": None, "hits@10": None, "mrr": None}


def test_fill_r2_is_one_for_the_truth_and_zero_for_the_lost_rows_mean(pair):
    drop = DropModality("attr", 0.5, seed=0)
    lost = lost_entities(pair, drop)
    assert fill_r2(pair, pair, "attr", lost) == 1.0
    means = copy.deepcopy(pair)
    for kg, mask in zip(sides(means), lost):
        x = kg["entity"].x_attr
        x[mask] = x[mask].mean(0)
    assert fill_r2(pair, means, "attr", lost) == pytest.approx(0.0, abs=1e-9)
    assert fill_r2(pair, drop(pair), "attr", lost) < 0  # zeros: worse than the mean
    nothing = tuple(torch.zeros_like(mask) for mask in lost)
    assert fill_r2(pair, pair, "attr", nothing) is None


@pytest.fixture(scope="module")
def imputed_run():
    config = ExperimentConfig(
        seed=1,
        epochs=2,
        model={"dim": 16, "impute_missing": True},
        progress=False,
        drop_modality="img",
        drop_fraction=0.4,
    )
    return config, run_experiment(config)


def test_a_run_reports_the_links_hit_apart_and_states_its_protocol(imputed_run):
    config, result = imputed_run
    protocol = result["protocol"]
    assert (protocol["removed_modality"], protocol["removed_fraction"]) == ("img", 0.4)
    assert (protocol["fill"], protocol["imputer"]) == ("zero", "lsl")
    missing = result["missing_modality"]
    original, pair = split_pair(config), prepare_pair(config)
    lost = [
        modality_mask(a, "img") & ~modality_mask(b, "img")
        for a, b in zip(sides(original), sides(pair))
    ]
    assert missing["lost_entities"] == [int(mask.sum()) for mask in lost]
    src, tgt = pair.test_links
    hit = lost[0][src] | lost[1][tgt]
    assert missing["links"] == {"affected": int(hit.sum()), "rest": int((~hit).sum())}
    assert 0 < int(hit.sum()) < protocol["test_links"]
    # Both parts at the run's own setting (imputed), against all test targets.
    for metric in ("cosine", "csls"):
        for key, value in result["metrics"][metric].items():
            parts = [
                missing[p][metric][key] * missing["links"][p] for p in missing["links"]
            ]
            assert sum(parts) / protocol["test_links"] == pytest.approx(value)
    # and by the modality's presence on each side (lost or missing in the data)
    lacks = [~modality_mask(a, "img") for a in sides(pair)]
    presence = missing["by_presence"]
    assert presence["links"] == {
        "one_side_lacks": int((lacks[0][src] ^ lacks[1][tgt]).sum()),
        "both_lack": int((lacks[0][src] & lacks[1][tgt]).sum()),
        "both_have": int((~lacks[0][src] & ~lacks[1][tgt]).sum()),
    }
    assert sum(presence["links"].values()) == protocol["test_links"]
    for key, value in result["metrics"]["csls"].items():
        parts = [
            presence[p]["csls"][key] * n for p, n in presence["links"].items() if n
        ]
        assert sum(parts) / protocol["test_links"] == pytest.approx(value)
    assert missing["fill_r2"] < 0  # zero rows
    assert isinstance(missing["imputation_r2"], float)
