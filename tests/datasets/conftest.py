"""The location of the real DBP15K data (skips cleanly when absent)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
