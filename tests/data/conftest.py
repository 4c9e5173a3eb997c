"""A pickled payload that runs code when loaded, to test that loaders refuse it."""

from pathlib import Path

import pytest


class CreatesFile:
    """Unpickling this calls ``open(path, "w")``: it creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return open, (self.path, "w")


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Where the payload writes when it runs; must stay absent."""
    return tmp_path / "payload_ran"


@pytest.fixture
def payload(marker: Path) -> CreatesFile:
    """An object whose unpickling creates ``marker``."""
    return CreatesFile(marker)
