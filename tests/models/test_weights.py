"""Pretrained encoder weights from a file the test writes; offline failure is fast."""

import time

import pytest
import torch
from safetensors.torch import save_file

from napari_seg.models import ModelSpec, WeightsUnavailableError, create_model


def _reference_encoder_state(arch, encoder, in_channels=3):
    torch.manual_seed(123)
    ref = create_model(ModelSpec(arch, in_channels, 2, encoder=encoder))
    return {k: v.clone() for k, v in ref.net.encoder.state_dict().items()}


@pytest.mark.parametrize(
    ("arch", "encoder", "suffix"),
    [
        ("unet", "resnet18", ".safetensors"),
        ("fcn", "resnet50", ".pth"),
        ("unet3+", "resnet18", ".pt"),
    ],
)
def test_encoder_weights_from_file(tmp_path, arch, encoder, suffix):
    state = _reference_encoder_state(arch, encoder)
    path = tmp_path / f"enc{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:  # a full-classifier style file: prefixed keys plus an fc head to be ignored
        full = {f"encoder.{k}": v for k, v in state.items()}
        full["fc.weight"] = torch.zeros(1000, 8)
        torch.save(full, path)
    torch.manual_seed(999)
    model = create_model(ModelSpec(arch, 3, 2, encoder=encoder), encoder_weights=path)
    loaded = model.net.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_rgb_weights_adapt_to_other_channel_counts(tmp_path):
    state = _reference_encoder_state("fpn", "resnet18")
    path = tmp_path / "rgb.safetensors"
    save_file(state, str(path))
    gray = create_model(ModelSpec("fpn", 1, 2, encoder="resnet18"), encoder_weights=path)
    w = gray.net.encoder.conv1.weight
    assert torch.allclose(w, state["conv1.weight"].sum(dim=1, keepdim=True))
    four = create_model(ModelSpec("fpn", 4, 2, encoder="resnet18"), encoder_weights=path)
    w4 = four.net.encoder.conv1.weight
    assert torch.allclose(w4[:, 3], state["conv1.weight"][:, 0] * 0.75)


def test_mismatched_weights_file_is_refused(tmp_path):
    state = _reference_encoder_state("fpn", "resnet18")
    path = tmp_path / "r18.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match="do not match the encoder"):
        create_model(ModelSpec("fpn", 3, 2, encoder="resnet50"), encoder_weights=path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder weights file not found"):
        create_model(ModelSpec("fpn", 3, 2), encoder_weights=tmp_path / "none.safetensors")


def test_encoderless_architecture_refuses_weights():
    # It said "with encoder None ... use encoder_weights=None" on the command line too.
    with pytest.raises(
        ValueError,
        match=r"attention-unet \(no encoder\) has no pretrained "
        r"encoder: .* \(--encoder-weights none, encoder_weights=None in Python\)",
    ):
        create_model(ModelSpec("attention-unet", 1, 2), encoder_weights="imagenet")


@pytest.mark.parametrize("offline_mode", ["env", "network"])
@pytest.mark.parametrize(("arch", "encoder"), [("unet", "resnet34"), ("fcn", "resnet50")])
def test_imagenet_offline_fails_fast_with_advice(
    monkeypatch, tmp_path, offline_mode, arch, encoder
):
    import socket

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # empty caches
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    if offline_mode == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")

        def unreachable(*_a, **_k):
            time.sleep(0.2)
            raise OSError("Network is unreachable")

        monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="not in the local cache") as info:
        create_model(ModelSpec(arch, 3, 2, encoder=encoder), encoder_weights="imagenet")
    elapsed = time.perf_counter() - start
    assert "pass its path" in str(info.value)
    assert elapsed < 5.0  # generous: model building is included


def test_imagenet_from_local_cache(monkeypatch, tmp_path):
    """A cached hub file is used without any network access."""
    import socket

    from huggingface_hub import hf_hub_download  # noqa: F401  (cache layout below)
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders["resnet18"]["pretrained_settings"]["imagenet"]
    repo, rev = settings["repo_id"], settings["revision"]
    cache = tmp_path / "hub"
    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
    snapshot.mkdir(parents=True)
    (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    state = _reference_encoder_state("unet", "resnet18")
    save_file(state, str(snapshot / "model.safetensors"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    def no_network(*_a, **_k):
        raise AssertionError("network used although the weights are cached")

    monkeypatch.setattr(socket, "create_connection", no_network)
    model = create_model(ModelSpec("unet", 3, 2, encoder="resnet18"), encoder_weights="imagenet")
    assert torch.equal(model.net.encoder.conv1.weight, state["conv1.weight"])
