"""Fixtures of the metrics tests: faiss (an optional extra) or a clean skip."""

import pytest


@pytest.fixture
def needs_faiss() -> None:
    """Skip the test when faiss is not installed (``pip install faiss-cpu``)."""
    pytest.importorskip("faiss", reason="faiss is not installed (almea-pyg[faiss])")
