"""Config files: the settings of a run as JSON, TOML or YAML.

A file holds a table of :class:`~almea_pyg.pipeline.experiment.ExperimentConfig`
fields (``model`` and ``active`` as nested tables); what it leaves out keeps its
default. JSON needs nothing; TOML needs Python 3.11 or ``tomli``, YAML needs
PyYAML: both come with ``pip install almea-pyg[config]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

#: The format of each file suffix.
FORMATS = {".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}

_EXTRA = "pip install 'almea-pyg[config]'"


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The table of settings in the file ``path``, in the format of its suffix.

    Raises:
        ValueError: An unknown suffix, a syntax error, or a file that holds no
            table; the message names the file.
        ModuleNotFoundError: The format's reader is not installed; the message
            says what to install.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"{path}: a config file is {', '.join(FORMATS)}, not {path.suffix!r}"
        )
    text = path.read_text(encoding="utf-8")
    if kind == "json":
        state = _parse(path, json.loads, text, ValueError)
    elif kind == "toml":
        toml = _toml()
        state = _parse(path, toml.loads, text, toml.TOMLDecodeError)
    else:
        yaml = _yaml()
        state = _parse(path, yaml.safe_load, text, yaml.YAMLError)
    if state is None:  # an empty YAML file
        return {}
    if not isinstance(state, dict):
        raise ValueError(
            f"{path}: holds a {type(state).__name__}, not a table of settings"
        )
    return state


def _parse(path: Path, loads: Any, text: str, error: type[Exception]) -> Any:
    try:
        return loads(text)
    except error as failure:
        raise ValueError(f"{path}: {failure}") from failure


def _toml() -> ModuleType:
    try:
        import tomllib
    except ModuleNotFoundError:
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"reading a TOML config needs Python >= 3.11 or tomli: {_EXTRA}",
                name="tomli",
            ) from None
    return tomllib


def _yaml() -> ModuleType:
    try:
        import yaml
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"reading a YAML config needs PyYAML: {_EXTRA}", name="yaml"
        ) from None
    return yaml
