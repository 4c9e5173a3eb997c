"""Shared fixtures: the location of the real MMKG data (skips cleanly when absent),
and the fixed-seed reference files recorded under this CPU's kernels."""

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def shared_mmkg_dir() -> Path | None:
    """``$ALMEA_MMKG_DIR`` or ``../shared/data/mmkg`` beside the checkout, if any."""
    candidates = [
        os.environ.get("ALMEA_MMKG_DIR"),
        ROOT.parent / "shared" / "data" / "mmkg",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "FB15K").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mmkg_dir() -> Path:
    """The real FB15K/DB15K/YAGO15K directory (mmkb layout); skips if absent."""
    path = shared_mmkg_dir()
    if path is None:
        pytest.skip("no real MMKG data (set ALMEA_MMKG_DIR or add ../shared/data/mmkg)")
    return path


@pytest.fixture(scope="session")
def dbp15k_dir() -> Path:
    """``$ALMEA_DBP15K_DIR`` or ``../shared/data/dbp15k`` beside the checkout, in
    GCN-Align's layout (``zh_en/ent_ids_1``, ...); skips if absent."""
    candidates = [
        os.environ.get("ALMEA_DBP15K_DIR"),
        ROOT.parent / "shared" / "data" / "dbp15k",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "zh_en" / "ref_ent_ids").is_file():
            return Path(candidate)
    pytest.skip(
        "no real DBP15K data (set ALMEA_DBP15K_DIR or add ../shared/data/dbp15k)"
    )


@pytest.fixture(scope="session")
def cpu_reference():
    """``path`` -> the reference recorded under the kernels torch dispatches to on
    this CPU: ``<stem>.<capability>.json`` (e.g. ``.avx512``) where one was
    recorded, else ``path`` (recorded with AVX2 kernels). Float results of a
    training run differ between kernel sets beyond rounding (an AVX-512 machine
    moved a gradient norm by 3e-4 after two steps), so each set has its own
    record, made by the code of the same commit."""
    capability = torch.backends.cpu.get_cpu_capability().lower()

    def resolve(path: Path) -> Path:
        own = path.with_name(f"{path.stem}.{capability}{path.suffix}")
        return own if own.exists() else path

    return resolve
