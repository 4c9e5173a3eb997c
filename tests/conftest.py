"""Shared fixtures: the location of the real MMKG data (skips cleanly when absent)."""

import os
from pathlib import Path

import pytest

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
