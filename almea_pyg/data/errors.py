"""The error every reader raises on malformed input, naming the file and the line."""

from __future__ import annotations

import os
from pathlib import Path


class DataFormatError(ValueError):
    """Malformed input file: the message reads ``"<file>:<line>: <reason>"``.

    Args:
        path (str or os.PathLike): The offending file.
        line (int, optional): Its 1-based line number, or ``None`` when the
            problem concerns the whole file (e.g. it is empty).
        reason (str): What is wrong, e.g.
            ``"expected 'head relation tail .', got 2 fields"``.
    """

    def __init__(self, path: str | os.PathLike, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = self.path.name if line is None else f"{self.path.name}:{line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.line, self.reason)
