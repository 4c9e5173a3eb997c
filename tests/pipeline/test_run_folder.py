import copy
import json

import pytest

from almea_pyg.data import make_synthetic_pair
from almea_pyg.pipeline.run_folder import (
    RunFolderError,
    check_resumable,
    config_fingerprint,
    data_fingerprint,
    prepare_folder,
    read_run_file,
    run_identity,
)


@pytest.fixture(scope="module")
def pair():
    return make_synthetic_pair(num_entities=60, seed=1).split(0.3, seed=0)


CONFIG = {"dataset": "synthetic", "seed": 0, "epochs": 2, "output": "a"}


def test_config_fingerprint_ignores_where_a_run_executes():
    moved = {**CONFIG, "output": "b", "device": "cuda", "progress": False}
    assert config_fingerprint(moved) == config_fingerprint(CONFIG)
    assert config_fingerprint({**CONFIG, "seed": 1}) != config_fingerprint(CONFIG)


def test_settings_added_later_change_no_fingerprint_at_their_default():
    later = {**CONFIG, "drop_modality": None, "drop_fraction": 0.0, "fill": "zero"}
    assert config_fingerprint(later) == config_fingerprint(CONFIG)
    for key, value in (("drop_modality", "img"), ("fill", "mean")):
        assert config_fingerprint({**later, key: value}) != config_fingerprint(CONFIG)


def test_data_fingerprint_sees_split_links_and_features(pair):
    assert data_fingerprint(pair) == data_fingerprint(copy.deepcopy(pair))
    other_split = make_synthetic_pair(num_entities=60, seed=1).split(0.3, seed=1)
    assert data_fingerprint(other_split) != data_fingerprint(pair)
    changed = copy.deepcopy(pair)
    x = changed.source["entity"]["x_img"]
    x[0, 0] += 1.0
    assert data_fingerprint(changed) != data_fingerprint(pair)
    shown = copy.deepcopy(pair)  # images are for people: the same data to a run
    shown.source["entity"].images = {shown.source["entity"].ids[0]: "/a.png"}
    assert data_fingerprint(shown) == data_fingerprint(pair)


def test_prepare_folder_refuses_reuse_unless_overwrite(pair, tmp_path):
    identity = run_identity(CONFIG, pair)
    prepare_folder(tmp_path, CONFIG, identity)
    assert read_run_file(tmp_path)["status"] == "running"
    (tmp_path / "log.csv").write_text("epoch\n1\n")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="same run: --resume continues it"):
        prepare_folder(tmp_path, CONFIG, identity)
    other = {**CONFIG, "seed": 1}
    with pytest.raises(RunFolderError, match="different run .*seed 0"):
        prepare_folder(tmp_path, other, run_identity(other, pair))
    prepare_folder(tmp_path, other, run_identity(other, pair), overwrite=True)
    assert not (tmp_path / "log.csv").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not a run file
    assert json.loads((tmp_path / "run.json").read_text())["config"]["seed"] == 1


def test_prepare_folder_refuses_a_file(pair, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        prepare_folder(path, CONFIG, run_identity(CONFIG, pair))


def test_check_resumable(pair, tmp_path):
    identity = run_identity(CONFIG, pair)
    state = {"model": {}, "metadata": {"fingerprint": identity}}
    check_resumable(tmp_path, state, identity)
    check_resumable(tmp_path, {"trainer": state}, identity)
    check_resumable(tmp_path, {"model": {}}, identity)  # an older checkpoint
    other_data = {**identity, "data": "0" * 16}
    with pytest.raises(RunFolderError, match="data differ"):
        check_resumable(tmp_path, state, other_data)
    other_config = {**identity, "config": "0" * 16}
    with pytest.raises(RunFolderError, match="another configuration"):
        check_resumable(tmp_path, state, other_config)
