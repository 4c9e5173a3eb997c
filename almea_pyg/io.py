"""Atomic writes: a temporary file beside the target, then a rename.

A crash mid-write leaves the previous file (or none), never half a file, which is
what checkpoints, result files and label files rely on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def _replace_via_temporary(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    return _replace_via_temporary(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return _replace_via_temporary(
        path, lambda tmp: tmp.write_text(text, encoding="utf-8")
    )
