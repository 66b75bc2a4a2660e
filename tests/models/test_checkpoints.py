"""Checkpoints: safetensors + config.json round trip, atomic overwrite, and refusal of bad files."""

import json
import pickle

import pytest
import torch

from explorer.errors import ModelError
from explorer.models.checkpoints import (
    ARCHITECTURES,
    build_from_checkpoint,
    load_checkpoint,
    load_extra_tensors,
    register_architecture,
    save_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@register_architecture("test-linear")
def _linear(config: dict) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(5, config["embedding_dim"]), torch.nn.BatchNorm1d(config["embedding_dim"])
    )


CONFIG = {"architecture": "test-linear", "modality": "image", "embedding_dim": 3}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    module = _linear(CONFIG)
    path = save_checkpoint(tmp_path / "ck", module, CONFIG, extra_tensors={"optim.0.exp_avg": torch.ones(4)})
    return path, module


def test_round_trip_keeps_weights_config_and_extras(saved):
    path, module = saved
    state, config = load_checkpoint(path)
    for k, v in module.state_dict().items():
        assert torch.equal(state[k], v)
    for key in ("architecture", "modality", "embedding_dim", "created", "explorer_version", "weights_sha256"):
        assert key in config
    assert torch.equal(load_extra_tensors(path)["optim.0.exp_avg"], torch.ones(4))
    rebuilt = build_from_checkpoint(path)
    x = torch.randn(4, 5)
    assert torch.allclose(rebuilt(x), module.eval()(x))
    assert "test-linear" in ARCHITECTURES


def test_existing_folder_needs_overwrite_and_leaves_no_temp(saved):
    path, module = saved
    with pytest.raises(ModelError, match="already exists"):
        save_checkpoint(path, module, CONFIG)
    (path / "train_state").mkdir()
    (path / "train_state" / "keep.txt").write_text("x")
    save_checkpoint(path, module, CONFIG | {"note": "second"}, overwrite=True, keep=("train_state",))
    assert load_checkpoint(path)[1]["note"] == "second"
    assert (path / "train_state" / "keep.txt").read_text() == "x"
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]


def test_config_without_required_keys_is_refused(tmp_path):
    with pytest.raises(ModelError, match="architecture"):
        save_checkpoint(tmp_path / "ck", torch.nn.Linear(2, 2), {"modality": "image", "embedding_dim": 2})


def test_truncated_weights_are_refused_naming_the_file(saved):
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="model.safetensors.*sha256"):
        load_checkpoint(path)


def test_corrupt_weights_with_matching_hash_are_refused(saved):
    path, _ = saved
    (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    config = json.loads((path / "config.json").read_text())
    import hashlib

    config["weights_sha256"] = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_checkpoint(path)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_pickle_disguised_as_safetensors_is_refused(saved, how):
    path, module = saved
    target = path / "model.safetensors"
    if how == "torch.save":
        torch.save(module.state_dict(), target)
    else:
        target.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(ModelError, match="pickle"):
        load_checkpoint(path)


def test_missing_or_broken_config_is_refused(saved, tmp_path):
    path, _ = saved
    with pytest.raises(ModelError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    (path / "config.json").write_text("{broken")
    with pytest.raises(ModelError, match="config.json: not valid JSON"):
        load_checkpoint(path)
    (path / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json: missing"):
        load_checkpoint(path)


def test_other_architecture_is_refused(saved):
    path, _ = saved
    with pytest.raises(ModelError, match="architecture is 'test-linear', expected 'explorer-image-cnn'"):
        load_checkpoint(path, architecture="explorer-image-cnn")
    config = json.loads((path / "config.json").read_text())
    config["architecture"] = "never-registered"
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not registered"):
        build_from_checkpoint(path)


def test_weights_that_do_not_fit_the_architecture_are_refused(saved):
    path, _ = saved
    config = json.loads((path / "config.json").read_text())
    config["embedding_dim"] = 7  # the factory now builds a different shape
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="do not fit"):
        build_from_checkpoint(path)
