import json

import pytest
import torch

from napari_seg.cli import main
from napari_seg.models import load_model


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == 8
    assert "resnet34" in by_name["deeplabv3+"]["encoders"]
    assert by_name["unet"]["options"] == {"depth": 4, "base_width": 32}


def test_models_text(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "UNet3+" in out
    assert "Attention U-Net" in out


def test_create_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    args = ["create", "--arch", "unet", "--in-channels", "2", "--classes", "3"]
    args += ["--class-names", "bg", "cell", "nucleus", "--option", "depth=3", "--out", str(out)]
    assert main(args) == 0
    assert "GFLOP per megapixel" in capsys.readouterr().out
    model = load_model(out)
    assert model.spec.class_names == ("bg", "cell", "nucleus")
    assert model.spec.options == {"depth": 3}
    assert model(torch.zeros(1, 2, 20, 20)).shape == (1, 3, 20, 20)
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["in_channels"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "segnet"], "unknown architecture 'segnet'"),
        (["--arch", "fpn", "--encoder", "vgg99"], "unknown encoder 'vgg99'"),
        (["--arch", "unet", "--classes", "1"], "num_classes must be an integer >= 2"),
        (["--arch", "unet", "--option", "depth"], "NAME=VALUE"),
        (["--arch", "fpn", "--encoder-weights", "imagenet"], "not in the local cache"),
    ],
)
def test_create_errors_are_one_clear_line(tmp_path, capsys, args, message):
    base = {"--in-channels": "1", "--classes": "2", "--out": str(tmp_path / "m.safetensors")}
    for key, value in base.items():
        if key not in args:
            args = [*args, key, value]
    assert main(["create", *args]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.safetensors").exists()


def test_info_refuses_pickles(tmp_path, capsys):
    path = tmp_path / "m.pt"
    torch.save({"a": torch.zeros(1)}, path)
    assert main(["info", str(path)]) == 1
    assert "refused unread" in capsys.readouterr().err


def test_devices(capsys):
    assert main(["devices", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["devices"][-1]["id"] == "cpu"


def test_headless_demo_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--headless", "--output", str(tmp_path / "demo")]) == 0
    summary = json.loads(capsys.readouterr().out)
    files = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"cells2d.tif", "cells2d_labels.tif", "model.safetensors", "summary.json"} <= files
    assert summary["model"]["classes"] == ["background", "cytoplasm", "nucleus"]
    assert load_model(tmp_path / "demo" / "model.safetensors").spec.num_classes == 3
