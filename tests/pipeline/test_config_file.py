import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from almea_pyg.active.loop import ActiveLearningConfig
from almea_pyg.pipeline.config_file import read_config_file
from almea_pyg.pipeline.experiment import ExperimentConfig

CONFIG = ExperimentConfig(
    dataset="FB15K_DB15K",
    data_dir="../shared/data/mmkg",
    seed_ratio=0.3,
    seed=2,
    epochs=40,
    variant="base",
    modalities=["graph", "rel"],
    lr=5e-4,
    optimizer="code",
    model={"dim": 64, "impute_missing": True},
    active=ActiveLearningConfig(
        rounds=3, budget=20, strategy="ds3", strategy_kwargs={"alpha": 0.3}
    ),
    progress=False,
    drop_modality="attr",
    drop_fraction=0.4,
    fill="propagate",
)


def toml_value(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    return json.dumps(value)  # strings and numbers are written alike


def to_toml(state, prefix=""):
    """A table as TOML (no ``None``: TOML has no null, so those keys are left
    out, which keeps their default)."""
    lines, tables = [], []
    for key, value in state.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{key} = {toml_value(value)}")
    for key, value in tables:
        lines += ["", f"[{prefix}{key}]", to_toml(value, f"{prefix}{key}.")]
    return "\n".join(lines)


def write(path, state):
    if path.suffix == ".json":
        path.write_text(json.dumps(state))
    elif path.suffix == ".toml":
        path.write_text(to_toml(state))
    else:
        yaml = pytest.importorskip("yaml")
        path.write_text(yaml.safe_dump(state))
    return path


@pytest.mark.parametrize("suffix", [".json", ".toml", ".yaml", ".yml"])
def test_round_trip(tmp_path, suffix):
    if suffix == ".toml" and sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    path = write(tmp_path / f"run{suffix}", asdict(CONFIG))
    assert ExperimentConfig.from_file(path) == CONFIG


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_left_out_keys_keep_their_defaults(tmp_path, suffix):
    path = write(tmp_path / f"run{suffix}", {"epochs": 3, "active": {"rounds": 1}})
    config = ExperimentConfig.from_file(path)
    assert config == ExperimentConfig(epochs=3, active=ActiveLearningConfig(rounds=1))


def test_a_directory_of_data_names_the_dataset(tmp_path):
    path = write(tmp_path / "run.json", {"data": "runs/my_kgs"})
    assert ExperimentConfig.from_file(path).dataset == "my_kgs"
    path = write(tmp_path / "run.json", {"data": "runs/my_kgs", "dataset": "mine"})
    assert ExperimentConfig.from_file(path).dataset == "mine"


def test_unknown_keys_are_refused_with_the_valid_ones(tmp_path):
    path = write(tmp_path / "run.json", {"epoch": 3, "sead": 1})
    with pytest.raises(ValueError) as info:
        ExperimentConfig.from_file(path)
    assert str(info.value) == (
        f"{path}: unknown keys 'epoch', 'sead': valid ones are dataset, data, "
        "data_dir, cache_dir, seed_ratio, pool_ratio, seed, epochs, eval_every, "
        "device, output, variant, modalities, metric, lr, batch_size, "
        "max_grad_norm, fanouts, full_forward, full_forward_every, optimizer, "
        "checkpoint_every, model, active, progress, drop_modality, drop_fraction, "
        "fill, search, search_kwargs"
    )


@pytest.mark.parametrize(
    "state, message",
    [
        ({"active": {"round": 3}}, "unknown active key 'round': valid ones are warmup"),
        ({"active": 3}, "active: a table of settings, not 3"),
        ({"model": [64]}, "model: a table of settings"),
        ({"active": {"rounds": -1}}, "rounds must be >= 0"),
    ],
)
def test_wrong_tables_are_refused_naming_the_file(tmp_path, state, message):
    path = write(tmp_path / "run.json", state)
    with pytest.raises(ValueError, match=message) as info:
        ExperimentConfig.from_file(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("run.ini", "[run]", "a config file is .json, .toml, .yaml, .yml"),
        ("run.json", "{epochs: 3", "Expecting property name"),
        ("run.json", "[1, 2]", "holds a list, not a table of settings"),
        ("run.toml", "epochs = ", "Invalid value"),
    ],
)
def test_unreadable_files_are_refused_naming_the_file(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_config_file(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / name))


def test_an_empty_yaml_file_is_the_defaults(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "run.yaml").write_text("# nothing set\n")
    assert ExperimentConfig.from_file(tmp_path / "run.yaml") == ExperimentConfig()


@pytest.mark.parametrize(
    "suffix, modules, message",
    [
        (".yaml", ["yaml"], "needs PyYAML: pip install 'almea-pyg\\[config\\]'"),
        (".toml", ["tomllib", "tomli"], "needs Python >= 3.11 or tomli: pip install"),
    ],
)
def test_a_missing_reader_names_the_extra(
    tmp_path, monkeypatch, suffix, modules, message
):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # import fails
    (tmp_path / f"run{suffix}").write_text("")
    with pytest.raises(ModuleNotFoundError, match=message):
        read_config_file(tmp_path / f"run{suffix}")


def test_the_example_file():
    if sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    example = Path(__file__).resolve().parents[2] / "examples" / "fb15k_db15k.toml"
    config = ExperimentConfig.from_file(example)
    assert (config.dataset, config.seed_ratio, config.epochs) == (
        "FB15K_DB15K",
        0.2,
        500,
    )
    assert config.model == {"dim": 300, "p_mask": 0.45}
    assert config.active == ActiveLearningConfig(
        rounds=5, interval=50, budget=0.01, strategy_kwargs={"alpha": 0.35}
    )
