"""Model files: safety (no unpickling), corruption, mismatch, atomic saving."""

import json
import pickle
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from napari_seg import DeviceError
from napari_seg.models import ModelFileError, ModelSpec, create_model, load_model, save_model
from napari_seg.models.model_file import read_model_card


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 8})).eval()


@pytest.fixture
def saved(model, tmp_path):
    return save_model(model, tmp_path / "m.safetensors", provenance={"note": "test"})


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creating the file proves code ran


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, writer):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    payload = {"state_dict": _Exploit(str(marker))}
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    # The payload is real: plain unpickling would run it.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Exploit(str(probe))))
    assert probe.exists()
    with pytest.raises(ModelFileError, match="refused unread"):
        load_model(evil)
    assert not marker.exists()


def test_card_records_spec_provenance_and_versions(saved, model):
    card = read_model_card(saved)
    assert card["format"] == "napari-seg-model"
    assert ModelSpec.from_dict(card["spec"]) == model.spec
    assert card["provenance"] == {"note": "test"}
    assert {"torch", "safetensors"} <= set(card["versions"])


def test_device_names_are_resolved(saved, model):
    # "auto" (the README's example) is a name of napari-seg's, not of torch's.
    loaded = load_model(saved, device="auto")
    assert next(loaded.parameters()).device.type in ("cpu", "cuda", "mps")
    assert loaded.spec == model.spec
    cpu = load_model(saved, device=torch.device("cpu"))
    assert next(cpu.parameters()).device == torch.device("cpu")
    with pytest.raises(DeviceError, match="tpu"):
        load_model(saved, device="tpu")


def test_truncated_file_is_a_clear_error(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        load_model(saved)


def test_flipped_bytes_are_detected(saved):
    data = bytearray(saved.read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor's data
    saved.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(saved)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("hello, this is text")
    with pytest.raises(ModelFileError, match="not a napari-seg model file"):
        load_model(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


def test_foreign_safetensors_without_card(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ModelFileError, match="without a napari-seg model card"):
        load_model(path)


def test_weights_not_matching_the_card(tmp_path, model):
    """A file whose card says depth 3 but whose weights are a depth-2 net."""
    from safetensors.torch import load_file, save_file

    from napari_seg.models.model_file import METADATA_KEY, tensors_digest

    path = save_model(model, tmp_path / "m.safetensors")
    card = read_model_card(path)
    card["spec"]["options"]["depth"] = 3
    tensors = load_file(str(path))
    card["tensors_sha256"] = tensors_digest(tensors)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(card)})
    with pytest.raises(ModelFileError, match="weights do not match"):
        load_model(path)


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    import napari_seg._atomic as atomic
    from napari_seg.models import ModelSpec, create_model, save_model

    real_open = atomic._open_temp

    class Dying:
        def __init__(self, f): self.f = f
        def __enter__(self): return self
        def __exit__(self, *a): return False
        def write(self, data):
            self.f.write(data[: len(data) // 2]); self.f.flush()
            os._exit(17)  # a hard crash halfway through the write: no cleanup runs
        def fileno(self): return self.f.fileno()
        def flush(self): self.f.flush()

    atomic._open_temp = lambda path: Dying(real_open(path))
    torch.manual_seed(1)
    spec = ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 8})
    save_model(create_model(spec), sys.argv[1], overwrite=True)
    """
)


def test_crash_while_saving_keeps_previous_file(saved, model, tmp_path):
    before = saved.read_bytes()
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(saved)], check=False)
    assert result.returncode == 17
    assert saved.read_bytes() == before
    loaded = load_model(saved)
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_failed_save_leaves_no_temporary_file(saved, model, monkeypatch):
    import napari_seg._atomic as atomic

    before = saved.read_bytes()

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, saved, overwrite=True)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_save_into_missing_folder_is_clear(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        save_model(model, tmp_path / "nope" / "m.safetensors")


@pytest.mark.parametrize("name", ["m.pt", "m.PTH", "m.ckpt"])
def test_a_model_file_is_never_named_as_a_pickle(model, tmp_path, name):
    """A model file is safetensors: written as ``model.pt`` it was a file torch.load
    cannot read, named as one it can. The name is refused, naming the one to use."""
    stem = name.partition(".")[0]
    with pytest.raises(ValueError, match=f"torch.load does not read; name it {stem}.safetensors"):
        save_model(model, tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert load_model(save_model(model, tmp_path / "m.v2")).spec == model.spec  # any other


@pytest.mark.parametrize(("name", "format_"), [("m.onnx", "ONNX"), ("m.ZIP", "bioimage.io")])
def test_a_model_file_is_never_named_as_another_format(model, tmp_path, name, format_):
    """``napari-seg create --out m.onnx`` wrote safetensors named as ONNX, which an
    ONNX runtime then failed to read."""
    with pytest.raises(ValueError, match=rf"not .*{format_}.*; name it m.safetensors"):
        save_model(model, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def _torchscript(path):
    import warnings

    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Conv2d(1, 2, 3)), path)


def _bioimageio(path, marker):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nformat_version: 0.5.3\n")
        archive.writestr("weights.pt", pickle.dumps(_Exploit(str(marker))))


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("unet.pt", _torchscript, "is a TorchScript model, .*refused unread"),
        ("model.zip", "bioimageio", "is a bioimage.io model package, .*opens only its own"),
        ("model.onnx", lambda p: p.write_bytes(b"\x08\x07\x12\x07pytorch"), "is an ONNX model"),
        ("notes.zip", "zip", "is a zip archive, not a napari-seg model file"),
        ("entries.zip", "many", "is a zip archive, not a napari-seg model file"),
        ("broken.pt", lambda p: p.write_bytes(b"PK\x03\x04broken"), "is a pickle-based .*unread"),
    ],
)
def test_a_model_from_elsewhere_is_named_as_what_it_is(tmp_path, name, make, message):
    """A TorchScript file, a bioimage.io package (a zip) and every other zip were all
    refused as "a pickle-based PyTorch file", an ONNX model as "not safetensors": a
    user with a model from another tool was told the wrong thing about it. Each is
    named now, from its first bytes, suffix and member names alone: nothing in it is
    unpickled or run (the package's weights would create a file if unpickled)."""
    import zipfile

    marker = tmp_path / "pwned"
    path = tmp_path / name
    if make == "bioimageio":
        _bioimageio(path, marker)
    elif make == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    elif make == "many":  # more entries than are listed (its directory is not read)
        from napari_seg.limits import MAX_ZIP_ENTRIES

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("rdf.yaml", "type: model\n")
            for index in range(MAX_ZIP_ENTRIES):
                archive.writestr(f"{index}", b"")
    else:
        make(path)
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))} {message}"):
        load_model(path)
    assert not marker.exists()


def test_what_is_not_a_model_is_named_by_save_predict_and_train(model, tmp_path):
    """``save_model("m.safetensors", model)`` failed with "'str' object has no attribute
    'net'", and ``save_model(monai_net, path)`` with torch's "'UNet' object has no
    attribute 'net'"; a file's path given to ``predict`` was only "got str"."""
    import numpy as np

    from napari_seg.inference import predict
    from napari_seg.training import train

    target = tmp_path / "m.safetensors"
    with pytest.raises(
        TypeError, match=re.escape("(the model comes first: save_model(model, path))")
    ):
        save_model(str(target), model)
    with pytest.raises(TypeError, match=re.escape("got Conv2d (a plain torch module: napari-seg")):
        save_model(torch.nn.Conv2d(1, 2, 3), target)
    assert not target.exists()
    image = np.zeros((32, 32), np.float32)
    with pytest.raises(
        TypeError,
        match=re.escape("got str (a model file: napari_seg.models.load_model(path) first)"),
    ):
        predict("m.safetensors", image)
    with pytest.raises(
        TypeError,
        match=re.escape(f"got {type(target).__name__} (a model file: give it as from_model=path)"),
    ):
        train((image, image.astype(np.uint8)), model=target, epochs=1, minutes=None)
