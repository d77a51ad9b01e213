import json

import numpy as np
import pytest
import tifffile
import torch

from napari_seg.cli import main
from napari_seg.metrics import error_map
from napari_seg.models import load_model


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == 13
    assert "resnet34" in by_name["deeplabv3+"]["encoders"]
    assert by_name["unet"]["options"] == {"depth": 4, "base_width": 32}
    assert by_name["fpn"]["dims"] == [2]
    assert {n for n, r in by_name.items() if 3 in r["dims"]} == {
        "unet",
        "attention-unet",
        "dynunet",
        "segresnet",
        "swin-unetr",
        "pixel-classifier",
    }


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
    said = capsys.readouterr().out
    assert f"wrote {out}: unet (classic), " in said
    assert "GFLOP per megapixel" in said
    model = load_model(out)
    assert model.spec.class_names == ("bg", "cell", "nucleus")
    assert model.spec.options == {"depth": 3}
    assert model(torch.zeros(1, 2, 20, 20)).shape == (1, 3, 20, 20)
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["in_channels"] == 2


def test_info_of_a_fitted_pixel_classifier_names_no_loss_or_epoch(tmp_path, capsys):
    from napari_seg.sample_data import cells_2d

    image, labels = cells_2d((64, 64))
    scribbles = np.zeros_like(labels)
    scribbles[::5, ::5] = labels[::5, ::5] + 1
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_scribbles.tif", scribbles)
    out = tmp_path / "pc.safetensors"
    argv = [
        "train",
        "--image",
        str(tmp_path / "a.tif"),
        "--labels",
        str(tmp_path / "a_scribbles.tif"),
    ]
    argv += ["--arch", "pixel-classifier", "--label0", "unlabelled", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "fitted on 1 pair(s) (a.tif)" in info
    assert "held-out stroke agreement" in info
    assert "(fitted in" in info
    assert "loss" not in info  # a forest is fitted, not trained on a loss
    assert "epoch" not in info


def test_create_3d_records_dims_and_spacing(tmp_path, capsys):
    out = tmp_path / "ct.safetensors"
    args = ["create", "--arch", "unet", "--dims", "3", "--spacing", "5", "0.5", "0.5"]
    args += ["--in-channels", "1", "--classes", "3", "--option", "depth=3", "--out", str(out)]
    assert main(args) == 0
    assert "GFLOP per megavoxel" in capsys.readouterr().out
    model = load_model(out)
    assert model.spec.spatial_dims == 3
    assert model.spec.spacing == (5.0, 0.5, 0.5)
    assert model(torch.zeros(1, 1, 6, 20, 20)).shape == (1, 3, 6, 20, 20)
    assert model.spec.spacing_unit is None  # no unit given: none recorded
    assert main(["info", str(out)]) == 0
    assert "dimensionality: 3D (spacing 5 x 0.5 x 0.5)" in capsys.readouterr().out
    # With its unit (a symbol or an NGFF name), recorded and shown.
    assert main([*args, "--spacing-unit", "mm", "--overwrite"]) == 0
    assert load_model(out).spec.spacing_unit == "millimeter"
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "dimensionality: 3D (spacing 5 x 0.5 x 0.5 mm)" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse names the bad unit
        main([*args, "--spacing-unit", "furlong", "--overwrite"])
    assert "unknown length unit 'furlong'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "fpn", "--dims", "3"], "architecture 'fpn' is 2D only"),
        (["--arch", "unet", "--dims", "3", "--spacing", "1", "1"], "one size per spatial axis"),
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


def test_headless_demo_runs_the_whole_loop(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--headless", "--output", str(out), "--minutes", "0.05"]) == 0
    summary = json.loads(capsys.readouterr().out)
    files = {p.name for p in out.iterdir()}
    assert set(summary["files"].values()) | {"summary.json"} == files
    assert summary["model"]["classes"] == ["background", "cytoplasm", "nucleus"]
    model = load_model(out / "model.safetensors")
    assert model.spec.num_classes == 3
    run = json.loads((out / "model.training.json").read_text())
    assert run["metrics"]["steps"] == summary["training"]["steps"]
    best = model.card["provenance"]["training"]["metrics"]
    assert best["best_epoch"] == run["metrics"]["best_epoch"]
    metrics = json.loads((out / "metrics.json").read_text())
    prediction = tifffile.imread(out / "cells2d_prediction.tif")
    truth = tifffile.imread(out / "cells2d_labels.tif")
    assert metrics["whole image"]["pixel_accuracy"] == pytest.approx((prediction == truth).mean())
    errors = tifffile.imread(out / "cells2d_errors.tif")
    assert np.array_equal(errors, error_map(prediction, truth))
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


#: Each command with a settings file, and the option that names the file in messages.
CONFIG_COMMANDS = [
    (["predict", "--model", "m.safetensors", "--output", "out", "in.tif"], "--config"),
    (["evaluate", "--pred", "p.tif", "--gt", "g.tif"], "--config"),
    (["train", "--image", "i.tif", "--labels", "l.tif", "--out", "m.safetensors"], "--config"),
    (["refine", "in.tif", "out.tif"], "--pipeline"),
]


@pytest.mark.parametrize(("command", "flag"), CONFIG_COMMANDS)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_every_command_reads_its_config_file_as_json_or_yaml(
    tmp_path, capsys, monkeypatch, command, flag, suffix
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"job{suffix}"
    path.write_text('{"no_such_setting": 1}' if suffix == ".json" else "no_such_setting: 1\n")
    assert main([*command, "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{flag} {path}" in err
    assert "no_such_setting" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("command", "flag"), CONFIG_COMMANDS)
def test_a_missing_config_file_is_named_with_its_option(tmp_path, capsys, command, flag):
    # It was Python's "[Errno 2] No such file or directory: '...'".
    missing = tmp_path / "job.yaml"
    assert main([*command, flag, str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"error: {flag} file not found: {missing}" in err
    assert "Errno" not in err


@pytest.mark.parametrize(("command", "flag"), CONFIG_COMMANDS)
def test_a_config_value_of_the_wrong_type_is_named_with_its_file(
    tmp_path, capsys, monkeypatch, command, flag
):
    # A wrong type is a TypeError, which the file's name was once added to only for
    # ValueErrors: "epochs must be an integer" did not say where epochs was set.
    setting, named = {
        "predict": ("tile", "tile"),
        "evaluate": ("tolerance", "tolerance"),
        "train": ("epochs", "epochs"),
        "refine": ("steps", "each step"),
    }[command[0]]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "job.yaml"
    path.write_text(f"{setting}: [1, 2, three]\n")
    assert main([*command, flag, str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{flag} {path}: " in err
    assert named in err
    assert "Traceback" not in err


def test_a_yaml_refine_config_given_as_config_is_applied(tmp_path):
    labels = np.zeros((32, 32), np.uint8)
    labels[4:20, 4:20] = 1
    labels[25, 25] = 1  # a one-pixel speck
    tifffile.imwrite(tmp_path / "in.tif", labels)
    (tmp_path / "steps.yaml").write_text(
        "steps:\n  - op: remove_small_objects\n    params: {min_size: 5}\n"
    )
    args = ["refine", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "--quiet"]
    assert main([*args, "--config", str(tmp_path / "steps.yaml")]) == 0
    out = tifffile.imread(tmp_path / "out.tif")
    assert out[25, 25] == 0
    assert (out[4:20, 4:20] == 1).all()


@pytest.mark.parametrize("verbose", [False, True])
def test_library_info_messages_show_only_with_verbose(verbose):
    """distributed sets its loggers to INFO and logs the connections an interrupted
    cluster closes with their tracebacks: without --verbose the command shows
    warnings and errors only, whichever library logs."""
    import subprocess
    import sys

    script = (
        "import logging\n"
        "from napari_seg.cli import log_to_stderr\n"
        f"log_to_stderr(verbose={verbose})\n"
        "library = logging.getLogger('distributed.batched')\n"
        "library.setLevel(logging.INFO)\n"
        "try:\n"
        "    raise ConnectionError('Stream is closed')\n"
        "except ConnectionError:\n"
        "    library.info('Batched Comm Closed', exc_info=True)\n"
        "logging.getLogger('napari_seg.x').warning('a warning')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "WARNING napari_seg.x: a warning" in done.stderr
    assert ("Batched Comm Closed" in done.stderr) is verbose
    assert ("Traceback" in done.stderr) is verbose


def test_every_option_says_what_it_does():
    """Every option and argument of every command has a help text (--loss, --label0, --precision,
    --seed... had none, so `napari-seg train --help` did not say what they mean)."""
    import argparse

    from napari_seg.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = [
        f"{name} {action.option_strings[0]}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.help in (None, "") and action.dest != "help"
    ]
    assert silent == []


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["evaluate", "--ignore", "-1"], "--ignore (ignore_labels) must be ids >= 0, got -1"),
        (["predict", "--batch", "0"], "--batch (batch_size) must be >= 1, got 0"),
        (["train", "--lr", "-1"], "--lr (learning_rate) must be > 0.0"),
        (["train", "--val-fraction", "2"], "--val-fraction (validation_fraction) must be"),
    ],
)
def test_a_setting_out_of_range_names_the_option_that_set_it(tmp_path, capsys, command, words):
    """The one validation names a setting by its config field (the widgets' and config
    files' name); on the command line an option spelled otherwise (``--batch`` for
    ``batch_size``) is named too: 'ignore_labels must be ids >= 0' left a user of
    ``--ignore`` to guess."""
    labels = np.zeros((40, 40), np.uint8)
    labels[5:20, 5:20] = 1
    tifffile.imwrite(tmp_path / "a.tif", labels.astype(np.float32))
    tifffile.imwrite(tmp_path / "a_labels.tif", labels)
    files = {
        "evaluate": ["--pred", str(tmp_path / "a_labels.tif"), "--gt",
                     str(tmp_path / "a_labels.tif")],
        "predict": ["--model", str(tmp_path / "m.safetensors"), str(tmp_path / "a.tif"),
                    "--output", str(tmp_path / "out")],
        "train": ["--image", str(tmp_path / "a.tif"), "--labels", str(tmp_path / "a_labels.tif"),
                  "--out", str(tmp_path / "t.safetensors")],
    }  # fmt: skip
    model = ["--arch", "unet", "--in-channels", "1", "--classes", "2"]
    assert main(["create", *model, "--out", str(tmp_path / "m.safetensors")]) == 0
    capsys.readouterr()
    assert main([*command, *files[command[0]]]) == 1
    assert f"napari-seg {command[0]}: error: {words}" in capsys.readouterr().err


def test_an_unknown_option_is_named_by_its_command_with_the_closest_option(capsys):
    """argparse reported ``train --model`` with the top-level usage ("napari-seg: error:
    unrecognized arguments") and no hint; the command's parser now reports it with its
    name and usage and the option meant (``--from-model``)."""
    args = ["--image", "a.tif", "--labels", "b.tif", "--out", "m.safetensors"]
    with pytest.raises(SystemExit) as raised:
        main(["train", *args, "--model", "m0.safetensors"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "usage: napari-seg train" in err
    assert "napari-seg train: error: unrecognized arguments: --model m0.safetensors" in err
    assert "(--model: did you mean --from-model?)" in err
    with pytest.raises(SystemExit):  # nothing close: no guess
        main(["models", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "napari-seg models: error: unrecognized arguments: --zzzzzz" in err
    assert "did you mean" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (  # a file after --spacing's sizes was read as one more size
            ["predict", "--model", "m.safetensors", "--output", "o", "--spacing", "1", "1",
             "ct.nii.gz"],
            "--spacing: expected a size (a number), got 'ct.nii.gz'; files after the sizes "
            "need -- before them (--spacing 1 1 -- FILE)",
        ),
        (  # MONAI's overlap is a fraction of the window; ours is in pixels
            ["predict", "--model", "m.safetensors", "--output", "o", "--overlap", "0.25", "a"],
            "--overlap: expected pixels (a whole number), got '0.25' (not a fraction of the "
            "tile, as MONAI's overlap: tile/4 is the default)",
        ),
        (
            ["evaluate", "--pred", "p.tif", "--gt", "g.tif", "--spacing", "one"],
            "--spacing: expected a size (a number), got 'one'",
        ),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_kind_says_what_the_option_takes(capsys, argv, message):
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
