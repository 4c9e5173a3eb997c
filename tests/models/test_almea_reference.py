"""The model, its objective and the Trainer reproduce a fixed-seed reference.

``almea_reference.json`` was recorded at commit 44cb67c, before ALMEA was split
into the module, its objective, imputation, diagnostics and candidate search
(one thread, torch 2.13 on CPU): every loss term, gradient norm and fusion weight
of each training step and the final metrics, both variants, imputation on and
off. The split reproduces it bit for bit; floats are compared to 1e-6 relative
so that another BLAS build passes. ``almea_reference.avx512.json`` is the same
run under AVX-512 kernels, recorded at commit 0625858 (whose code passed the
first record on an AVX2 machine); the test reads the one of this CPU
(``cpu_reference`` in ``conftest.py``). ``python tests/models/test_almea_reference.py
[FILE]`` rewrites a record (only after a change meant to move the numbers).
"""

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from almea_pyg.data.synthetic import make_synthetic_pair
from almea_pyg.metrics import alignment_candidates
from almea_pyg.models import ALMEA, latent_diagnostics
from almea_pyg.train import Trainer

REFERENCE = Path(__file__).with_name("almea_reference.json")
VARIANTS = {"almea": True, "base": False}


def reference_run(variant: str) -> dict[str, Any]:
    """Six full-batch steps (74 seed pairs, lr 1e-2, latent chunks of 32)."""
    torch.manual_seed(0)
    pair = make_synthetic_pair(num_entities=300, seed=1).split(0.3, seed=0)
    use_lsl = VARIANTS[variant]
    model = ALMEA.from_pair(pair, dim=16, use_lsl=use_lsl, latent_chunk_size=32)
    trainer = Trainer(model, pair, lr=1e-2, batch_size=3500, seed=0, progress=False)
    trainer.fit(6)
    run: dict[str, Any] = {
        "steps": [
            # the epoch's lr, logged since, is the constant input (not recorded)
            {k: v for k, v in row.items() if k not in ("seconds", "lr")}
            for row in trainer.history
        ]
    }
    ids = pair.source["entity"].ids, pair.target["entity"].ids
    for impute in (False, True):
        model.impute_missing = impute
        emb_s, emb_t = model.embed(pair)
        top = alignment_candidates(
            emb_s,
            emb_t,
            3,
            sources=pair.test_links[0, :4],
            source_ids=ids[0],
            target_ids=ids[1],
        )
        run[f"impute_{impute}".lower()] = {
            "csls": trainer.evaluate(),
            "cosine": trainer.evaluate(metric="cosine"),
            "embedding_sums": [
                float(emb_s.double().sum()),
                float(emb_t.double().sum()),
            ],
            "candidates": {"target_ids": top.target_ids, "score": top.score.tolist()},
        }
    if use_lsl:
        run["latent_diagnostics"] = latent_diagnostics(model, pair)
    return run


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """``{"a/0/b": leaf}`` for nested dicts and lists."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {path: value}
    out = {}
    for key, item in items:
        out.update(flatten(item, f"{path}/{key}"))
    return out


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reproduces_the_reference(variant, one_thread, cpu_reference):
    reference = json.loads(cpu_reference(REFERENCE).read_text())
    expected = flatten(reference["runs"][variant])
    got = flatten(reference_run(variant))
    assert got.keys() == expected.keys()
    assert any("/steps/5/scl" in key for key in got) == VARIANTS[variant]
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
        else:
            assert got[key] == value, key


if __name__ == "__main__":
    torch.set_num_threads(1)
    runs = {variant: reference_run(variant) for variant in VARIANTS}
    Path(sys.argv[1] if len(sys.argv) > 1 else REFERENCE).write_text(
        json.dumps({"torch": torch.__version__, "runs": runs}, indent=1)
    )
