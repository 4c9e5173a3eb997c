"""A run's output folder: which run it holds, and when it may be reused.

A run writes ``run.json`` (its configuration, a fingerprint of that configuration
and of its data, and its status) before its first epoch, and the same
configuration and fingerprint into every checkpoint. So a folder always says
which run it belongs to, a killed run resumes from its checkpoint alone, and a
new run never silently overwrites or mixes with an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from almea_pyg.data.pair import MMKGPair
from almea_pyg.io import atomic_write_text

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"
#: What a run writes into its folder; ``overwrite`` removes exactly these.
RUN_FILE_PATTERNS = (
    RUN_FILE,
    "result.json",
    CHECKPOINT_FILE,
    "*.tmp",
    "log.csv",
    "labelled_links.tsv",
    "labels_round*.csv",
    "resume_round*.log",
    "selected_pairs.csv",
    "training.png",
    "modality_weights.png",
    "rounds.png",
    "selection_map.png",
)
#: Settings that say where or how a run executes, not which run it is.
PLACEMENT_KEYS = (
    "output",
    "progress",
    "device",
    "data",
    "data_dir",
    "cache_dir",
    "checkpoint_every",
)


class RunFolderError(ValueError):
    """A folder cannot be used for the run asked for (reuse, resume, mismatch)."""


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Settings added after runs were recorded, with the value that leaves a run as
#: it was: left out of the fingerprint at that value, so earlier folders resume.
LATER_DEFAULTS = {
    "drop_modality": None,
    "drop_fraction": 0.0,
    "fill": "zero",
    "fanouts": None,
    "full_forward": False,
    "full_forward_every": 1,
    "search": "exact",
    "search_kwargs": None,
}


def config_fingerprint(config: dict[str, Any]) -> str:
    """A short hash of what defines a run: its config less :data:`PLACEMENT_KEYS`
    and less the :data:`LATER_DEFAULTS` it leaves at their value."""
    return _digest(
        {
            k: v
            for k, v in config.items()
            if k not in PLACEMENT_KEYS
            and not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])
        }
    )


def _tensor_digest(digest: Any, tensor: Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))


#: Store keys that only people look at (the labelling page's entity images):
#: adding them to a KG after training leaves its runs resumable.
DISPLAY_KEYS = frozenset({"images"})


def data_fingerprint(pair: MMKGPair) -> str:
    """A short hash of a split pair: links, splits, graphs and features (not what
    is only shown to people, such as :data:`DISPLAY_KEYS`)."""
    digest = hashlib.sha256()
    for links in (pair.links, pair.train_links, pair.valid_links, pair.test_links):
        _tensor_digest(digest, links)
    for kg in (pair.source, pair.target):
        for store in kg.stores:
            for key in sorted(set(store.keys()) - DISPLAY_KEYS):
                value = store[key]
                digest.update(key.encode())
                if isinstance(value, Tensor):
                    _tensor_digest(digest, value)
                elif isinstance(value, (int, str)):
                    digest.update(str(value).encode())
                elif isinstance(value, (list, tuple)):
                    digest.update("\n".join(map(str, value)).encode())
    return digest.hexdigest()[:16]


def run_identity(config: dict[str, Any], pair: MMKGPair) -> dict[str, str]:
    """The fingerprints a folder and its checkpoints record for a run."""
    return {"config": config_fingerprint(config), "data": data_fingerprint(pair)}


def read_run_file(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's ``run.json``, or ``None`` when there is none."""
    path = Path(folder) / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path}: not valid JSON ({error})") from error


def existing_run_files(folder: Path) -> list[Path]:
    """The files of an earlier run in ``folder``."""
    return sorted(
        {path for pattern in RUN_FILE_PATTERNS for path in folder.glob(pattern)}
    )


def describe(config: dict[str, Any]) -> str:
    keys = ("dataset", "variant", "seed_ratio", "seed", "epochs")
    return ", ".join(f"{key} {config.get(key)}" for key in keys)


def prepare_folder(
    folder: str | os.PathLike,
    config: dict[str, Any],
    identity: dict[str, str],
    *,
    overwrite: bool = False,
) -> Path:
    """Make ``folder`` ready for a new run, or refuse.

    A folder holding files of an earlier run is refused unless ``overwrite``,
    which removes them first (and only them). Then ``run.json`` is written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output {folder} is a file, not a directory")
    found = existing_run_files(folder) if folder.is_dir() else []
    if found and not overwrite:
        stored = read_run_file(folder)
        if stored is not None and stored.get("fingerprint") == identity:
            hint = "it holds this same run: --resume continues it"
        elif stored is not None:
            hint = f"it holds a different run ({describe(stored['config'])})"
        else:
            hint = f"it holds files of an earlier run ({found[0].name}, ...)"
        raise RunFolderError(
            f"output {folder}: {hint}; --overwrite replaces it, or choose another "
            "--output"
        )
    for path in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_run_file(folder, config, identity, status="running")
    return folder


def write_run_file(
    folder: str | os.PathLike,
    config: dict[str, Any],
    identity: dict[str, str],
    *,
    status: str,
) -> None:
    """Write ``run.json``: the config, its fingerprints and the run's status."""
    record = {"status": status, "fingerprint": identity, "config": config}
    atomic_write_text(
        json.dumps(record, indent=2, default=str), Path(folder) / RUN_FILE
    )


def check_resumable(
    folder: str | os.PathLike, state: dict[str, Any], identity: dict[str, str]
) -> None:
    """Refuse to resume a checkpoint that belongs to another run or other data."""
    trainer_state = state.get("trainer", state)
    stored = trainer_state.get("metadata", {}).get("fingerprint")
    if stored is None:
        return
    if stored.get("data") != identity["data"]:
        raise RunFolderError(
            f"{folder}: the data differ from those the run started on "
            "(links, split or features changed); start a new run"
        )
    if stored.get("config") != identity["config"]:
        raise RunFolderError(
            f"{folder}: its checkpoint belongs to a run with another configuration"
        )
