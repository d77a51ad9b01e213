"""``napari-seg train`` end to end on small files."""

import json

import numpy as np
import pytest
import tifffile

from napari_seg.cli import main
from napari_seg.models import load_model
from napari_seg.sample_data import cells_2d

FAST = [
    "--epochs",
    "2",
    "--steps-per-epoch",
    "3",
    "--batch",
    "2",
    "--patch",
    "64",
    "--option",
    "depth=3",
    "--option",
    "base_width=8",
    "--device",
    "cpu",
    "--quiet",
]


@pytest.fixture
def files(tmp_path):
    paths = {}
    for seed in (0, 1):
        image, labels = cells_2d((96, 128), seed=seed)
        paths[f"image{seed}"] = tmp_path / f"cells{seed}.tif"
        paths[f"labels{seed}"] = tmp_path / f"cells{seed}_labels.tif"
        tifffile.imwrite(paths[f"image{seed}"], image)
        tifffile.imwrite(paths[f"labels{seed}"], labels)
    return paths


def test_train_two_pairs_json(files, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    argv = [
        "train",
        "--image",
        str(files["image0"]),
        "--labels",
        str(files["labels0"]),
        "--image",
        str(files["image1"]),
        "--labels",
        str(files["labels1"]),
        "--arch",
        "unet",
        "--label0",
        "background",
        "--loss",
        "weighted-ce",
        "--out",
        str(out),
        "--json",
        *FAST,
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["epochs"] == 2
    assert report["steps"] == 6
    assert report["files"]["best"] == str(out)
    summary = json.loads((tmp_path / "model.training.json").read_text())
    assert summary["config"]["loss"] == "weighted-ce"
    assert summary["data"]["pairs"] == ["cells0.tif", "cells1.tif"]
    assert load_model(out).spec.num_classes == 3
    # info reads as a summary; the run's resumable state is left to --json
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "trained on 2 pair(s) (cells0.tif, cells1.tif), loss weighted-ce" in info
    assert f"best validation IoU {report['metrics']['best_val_iou']:.3f} at epoch" in info
    assert "param_groups" not in info
    assert main(["info", str(out), "--json"]) == 0
    assert "param_groups" in capsys.readouterr().out


def test_config_file_then_flags_and_fine_tuning(files, tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    first = [
        "train",
        "--image",
        str(files["image0"]),
        "--labels",
        str(files["labels0"]),
        "--label0",
        "background",
        "--out",
        str(base),
        *FAST,
    ]
    assert main(first) == 0
    config = tmp_path / "run.yaml"
    config.write_text("loss: dice\nlabel0: background\nflips: false\n")
    out = tmp_path / "tuned.safetensors"
    argv = [
        "train",
        "--image",
        str(files["image1"]),
        "--labels",
        str(files["labels1"]),
        "--config",
        str(config),
        "--from-model",
        str(base),
        "--out",
        str(out),
        "--json",
        *FAST,
    ]
    assert main(argv) == 0
    capsys.readouterr()
    training = load_model(out).card["provenance"]["training"]
    assert training["config"]["loss"] == "dice"
    assert training["config"]["flips"] is False
    assert training["config"]["from_model"] == str(base)


def test_resume_continues_the_run(files, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    common = ["--image", str(files["image0"]), "--labels", str(files["labels0"])]
    assert main(["train", *common, "--label0", "background", "--out", str(out), *FAST]) == 0
    last = tmp_path / "model-last.safetensors"
    argv = ["train", *common, "--resume", str(last), "--epochs", "3", "--out", str(out), "--json"]
    capsys.readouterr()
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["epochs"] == 3
    assert report["steps"] == 9
    assert load_model(last).card["provenance"]["training"]["metrics"]["epochs"] == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--labels", "X"], "give one --labels per --image"),
        (["--out", "{tmp}/missing/model.safetensors"], "output folder does not exist"),
        (["--loss-weights"], None),
    ],
)
def test_errors_are_one_line(files, tmp_path, capsys, extra, message):
    argv = [
        "train",
        "--image",
        str(files["image0"]),
        "--labels",
        str(files["labels0"]),
        "--out",
        str(tmp_path / "m.safetensors"),
        *FAST,
    ]
    extra = [e.replace("{tmp}", str(tmp_path)).replace("X", str(files["labels1"])) for e in extra]
    if message is None:
        with pytest.raises(SystemExit):
            main([*argv, *extra])
        return
    assert main([*argv, *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("napari-seg train: error:")
    assert message in err[-1]


def test_float_labels_file_is_refused(files, tmp_path, capsys):
    bad = tmp_path / "float_labels.tif"
    tifffile.imwrite(bad, np.full((96, 128), 0.25, np.float32))  # not class ids
    argv = [
        "train",
        "--image",
        str(files["image0"]),
        "--labels",
        str(bad),
        "--out",
        str(tmp_path / "m.safetensors"),
        *FAST,
    ]
    assert main(argv) == 1
    assert "integer class ids" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()


def test_an_existing_model_file_is_replaced_only_with_overwrite(files, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"a model trained last week")
    common = ["train", "--image", str(files["image0"]), "--labels", str(files["labels0"])]
    argv = [*common, "--label0", "background", "--out", str(out), *FAST]
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"a model trained last week"
    assert sorted(p.name for p in tmp_path.iterdir() if "model" in p.name) == [out.name]
    assert main([*argv, "--overwrite"]) == 0
    assert load_model(out).spec.num_classes == 3
    bad = [*common, "--label0", "background", "--out", str(files["labels0"]), *FAST]
    assert main([*bad, "--overwrite"]) == 1  # never over an input, whatever --overwrite says
    assert "is an input of this job" in capsys.readouterr().err


def _interrupt(cli_child, argv, signals: int):
    """Run `napari-seg train` in a child, send SIGINT `signals` times once it trains."""
    child = cli_child(argv)
    child.wait_until(lambda: b"loss" in child.stderr, "training step")  # the bar shows a loss
    child.interrupt()
    if signals > 1:
        # Python runs one handler for signals that arrive while the main thread is in a
        # long C call, so the second Ctrl+C waits until the first one was handled.
        child.wait_until(
            lambda: b"Ctrl+C again aborts" in child.stderr, "first Ctrl+C handled", poll=0.005
        )
        child.interrupt()
    code = child.finish()
    return code, child.err


def test_ctrl_c_before_the_first_validation_says_no_model_was_written(files, tmp_path, cli_child):
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(files["image0"]), "--labels", str(files["labels0"])]
    argv += ["--label0", "background", "--out", str(out), "--epochs", "1"]
    argv += ["--steps-per-epoch", "100000", "--batch", "1", "--patch", "32", "--device", "cpu"]
    argv += ["--option", "depth=2", "--option", "base_width=4"]
    code, err = _interrupt(cli_child, argv, 1)
    assert code == 130, err
    assert "no model was written to" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_two_ctrl_c_abort_with_status_130_and_no_traceback(files, tmp_path, cli_child):
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(files["image0"]), "--labels", str(files["labels0"])]
    argv += ["--label0", "background", "--out", str(out), "--minutes", "5", "--batch", "4"]
    argv += ["--patience", "100000", "--patch", "128", "--device", "cpu"]  # steps of ~0.4 s
    code, err = _interrupt(cli_child, argv, 2)
    assert code == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err


def test_an_ome_zarr_image_s_pixel_size_is_recorded_in_the_model(files, tmp_path):
    """As a NIfTI header's: an OME-Zarr image's scale (not 1 everywhere) becomes the
    new model's spacing; a plain TIFF beside it declares none, so nothing is recorded."""
    zarr = pytest.importorskip("zarr")
    image = tifffile.imread(files["image0"])
    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=image.shape, dtype=image.dtype)[:] = image
    group.attrs["multiscales"] = [{"datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [0.5, 0.25]}]}]}]  # fmt: skip
    base = ["train", "--image", str(tmp_path / "img.ome.zarr"), "--labels",
            str(files["labels0"]), "--arch", "unet", *FAST]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "m.safetensors")]) == 0
    assert load_model(tmp_path / "m.safetensors").spec.spacing == (0.5, 0.25)
    assert load_model(tmp_path / "m.safetensors").spec.spacing_unit is None  # no axes units
    mixed = [*base, "--image", str(files["image1"]), "--labels", str(files["labels1"])]
    assert main([*mixed, "--out", str(tmp_path / "n.safetensors")]) == 0
    assert load_model(tmp_path / "n.safetensors").spec.spacing is None


def test_a_calibrated_tiff_s_pixel_size_is_recorded_in_the_model(files, tmp_path):
    """As an OME-Zarr image's: an ImageJ TIFF's pixel size becomes the new model's
    spacing (the uncalibrated TIFFs of the other tests record none)."""
    image = tifffile.imread(files["image0"])
    tifffile.imwrite(tmp_path / "img.tif", image, imagej=True, resolution=(4.0, 2.0),
                     metadata={"axes": "YX", "unit": "micron"})  # fmt: skip
    argv = ["train", "--image", str(tmp_path / "img.tif"), "--labels", str(files["labels0"]),
            "--arch", "unet", *FAST, "--out", str(tmp_path / "m.safetensors")]  # fmt: skip
    assert main(argv) == 0
    spec = load_model(tmp_path / "m.safetensors").spec
    assert (spec.spacing, spec.spacing_unit) == ((0.5, 0.25), "micrometer")
    # A spacing given on the command line has the unit given with it, or none.
    argv[-1] = str(tmp_path / "n.safetensors")
    assert main([*argv, "--spacing", "0.4", "0.4"]) == 0
    spec = load_model(tmp_path / "n.safetensors").spec
    assert (spec.spacing, spec.spacing_unit) == ((0.4, 0.4), None)
    assert main([*argv, "--spacing", "400", "400", "--spacing-unit", "nm", "--overwrite"]) == 0
    spec = load_model(tmp_path / "n.safetensors").spec
    assert (spec.spacing, spec.spacing_unit) == ((400.0, 400.0), "nanometer")


def test_a_new_model_reads_the_channels_of_a_fiji_hyperstack(files, tmp_path, capsys):
    """A two-channel TIFF with a C axis (as Fiji saves it) trains a two-channel model,
    which ``predict`` then feeds from the same axis."""
    image = tifffile.imread(files["image0"])
    two = np.stack([image, image[::-1]])
    tifffile.imwrite(tmp_path / "cyx.tif", two, imagej=True, metadata={"axes": "CYX"})
    argv = ["train", "--image", str(tmp_path / "cyx.tif"), "--labels", str(files["labels0"]),
            "--arch", "unet", *FAST, "--out", str(tmp_path / "m.safetensors")]  # fmt: skip
    assert main(argv) == 0
    assert load_model(tmp_path / "m.safetensors").spec.in_channels == 2
    # Fine-tuning it on a two-timepoint, two-channel hyperstack (TCYX) reads the C
    # axis as predict does, not the first axis of two (the time axis).
    labels = tifffile.imread(files["labels0"])
    tifffile.imwrite(tmp_path / "tcyx.tif", np.stack([two, two[::-1]]), imagej=True,
                     metadata={"axes": "TCYX"})  # fmt: skip
    tifffile.imwrite(tmp_path / "t_labels.tif", np.stack([labels, labels]))
    tuned = ["train", "--image", str(tmp_path / "tcyx.tif"), "--labels",
             str(tmp_path / "t_labels.tif"), "--from-model", str(tmp_path / "m.safetensors"),
             "--axis", "0", *FAST, "--out", str(tmp_path / "t.safetensors")]  # fmt: skip
    tuned.remove("--option")
    tuned.remove("depth=3")
    tuned.remove("--option")
    tuned.remove("base_width=8")
    assert main(tuned) == 0
    summary = json.loads((tmp_path / "t.training.json").read_text())
    assert summary["config"]["channel_axis"] == 1
    # A one-channel model on it: refused with what to do (the C axis was taken for
    # a stack axis, and the error spoke of "3 spatial axes").
    from napari_seg.models import ModelSpec, create_model, save_model

    spec = ModelSpec("unet", in_channels=1, num_classes=3, options={"depth": 2, "base_width": 4})
    save_model(create_model(spec), tmp_path / "one.safetensors")
    one = [str(tmp_path / "one.safetensors") if a.endswith("m.safetensors") else a for a in tuned]
    assert main([*one[: one.index("--out")], "--out", str(tmp_path / "o.safetensors")]) == 1
    assert "holds 2 channels (its C axis, axis 1) and the model reads 1" in capsys.readouterr().err
    # --channel 1: that channel alone, frame by frame along the T axis the file names
    at = one.index("--axis")
    picked = one[:at] + one[at + 2 : one.index("--out")] + ["--channel", "1"]
    assert main([*picked, "--out", str(tmp_path / "c.safetensors")]) == 0
    config = json.loads((tmp_path / "c.training.json").read_text())["config"]
    assert (config["channel_axis"], config["axis"]) == (None, 0)


def test_a_tiff_without_axis_names_reads_the_axis_its_labels_lack_as_channels(
    files, tmp_path, capsys
):
    """A plain two-channel TIFF (no axis names) with YX labels trains a two-channel
    model: the error used to say the image had 3 non-channel axes and advise --axis 0,
    which then failed on the labels' shape. A stack with 2D labels is still refused."""
    image = tifffile.imread(files["image0"])
    tifffile.imwrite(tmp_path / "cyx.tif", np.stack([image, image[::-1]]))
    argv = ["train", "--image", str(tmp_path / "cyx.tif"), "--labels", str(files["labels0"]),
            "--arch", "unet", *FAST, "--out", str(tmp_path / "m.safetensors")]  # fmt: skip
    assert main(argv) == 0
    assert load_model(tmp_path / "m.safetensors").spec.in_channels == 2
    summary = json.loads((tmp_path / "m.training.json").read_text())
    assert summary["config"]["channel_axis"] == 0
    tifffile.imwrite(tmp_path / "zyx.tif", np.stack([image] * 20))
    stack = [tmp_path / "zyx.tif" if a.endswith("cyx.tif") else a for a in argv]
    assert main([*map(str, stack[:-1]), str(tmp_path / "s.safetensors")]) == 1
    assert "choose the axis to go through slice by slice" in capsys.readouterr().err


def test_instance_labels_need_instances_and_train_objects_and_boundaries(
    tmp_path, capsys, make_instances
):
    image, objects = make_instances(n=30, radius=(6.0, 6.0))
    tifffile.imwrite(tmp_path / "nuclei.tif", image)
    tifffile.imwrite(tmp_path / "nuclei_labels.tif", objects)
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "nuclei.tif")]
    argv += ["--labels", str(tmp_path / "nuclei_labels.tif"), "--out", str(out), *FAST]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "nuclei.tif: the labels hold" in err[-1]
    assert "instance labels" in err[-1]
    assert not out.exists()
    assert main([*argv, "--instances", "boundaries"]) == 0
    assert load_model(out).spec.class_names == ("background", "object", "boundary")


def test_a_folder_of_images_and_labels_trains_on_its_pairs(files, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "unlabelled.tif", cells_2d((96, 128), seed=5)[0])
    out = tmp_path / "model.safetensors"
    folder = str(tmp_path)
    argv = ["train", "--image", folder, "--labels", folder, "--arch", "unet",
            "--label0", "background", "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert "1 image without a label file left out: unlabelled.tif" in capsys.readouterr().err
    summary = json.loads((tmp_path / "model.training.json").read_text())
    assert summary["data"]["pairs"] == ["cells0.tif", "cells1.tif"]
    masks = tmp_path / "masks"
    masks.mkdir()
    tifffile.imwrite(masks / "other.tif", np.zeros((96, 128), np.uint8))
    argv = ["train", "--image", folder, "--labels", str(masks), "--arch", "unet",
            "--out", str(tmp_path / "n.safetensors"), *FAST]  # fmt: skip
    assert main(argv) == 1
    assert "no file of" in capsys.readouterr().err


def test_a_fiji_time_lapse_trains_frame_by_frame_without_axis(tmp_path):
    from napari_seg.sample_data import cells_3d

    image, labels = cells_3d((3, 64, 80), seed=1)
    tifffile.imwrite(tmp_path / "movie.tif", image, imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "movie_labels.tif", labels.astype(np.uint8))
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "movie.tif"), "--labels",
            str(tmp_path / "movie_labels.tif"), "--arch", "unet", "--label0", "background",
            "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((tmp_path / "m.training.json").read_text())["config"]["axis"] == 0


@pytest.mark.parametrize("given", [[], ["--axis", "0,1"]])
def test_a_tzyx_hyperstack_trains_on_every_plane_of_every_frame(tmp_path, given):
    """A 2D model on a TZYX stack: both stack axes, named by the file or by --axis."""
    from napari_seg.sample_data import cells_3d

    image, labels = cells_3d((6, 48, 64), seed=1)
    image, labels = image.reshape(2, 3, 48, 64), labels.reshape(2, 3, 48, 64)
    meta = {"imagej": True, "metadata": {"axes": "TZYX"}}
    tifffile.imwrite(tmp_path / "movie.tif", image, **(meta if not given else {}))
    tifffile.imwrite(tmp_path / "movie_labels.tif", labels.astype(np.uint8))
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "movie.tif"), "--labels",
            str(tmp_path / "movie_labels.tif"), "--arch", "unet", "--label0", "background",
            "--out", str(out), *given, *FAST]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "m.training.json").read_text())
    assert summary["config"]["axis"] == [0, 1]
    # planes of both frames (some held out for validation): more than one frame's
    assert summary["data"]["annotated_pixels"] > labels[0].size


@pytest.mark.parametrize("given", [[], ["--axis", "0"]])
def test_a_tzyx_hyperstack_trains_a_3d_model_volume_by_volume(tmp_path, given):
    """--dims 3 on a Fiji TZYX hyperstack: each frame is a volume (the T axis the file
    names, or --axis); it was refused with "4 non-channel axes", --axis or not."""
    from napari_seg.sample_data import cells_3d

    frames = [cells_3d((12, 40, 48), seed=s) for s in (1, 2)]
    image = np.stack([f[0] for f in frames])
    labels = np.stack([f[1] for f in frames]).astype(np.uint8)
    meta = {"imagej": True, "metadata": {"axes": "TZYX"}}
    tifffile.imwrite(tmp_path / "movie.tif", image, **(meta if not given else {}))
    tifffile.imwrite(tmp_path / "movie_labels.tif", labels)
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "movie.tif"), "--labels",
            str(tmp_path / "movie_labels.tif"), "--arch", "pixel-classifier", "--dims", "3",
            "--label0", "background", "--out", str(out), "--device", "cpu", "--quiet",
            *given]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "m.training.json").read_text())
    assert summary["config"]["axis"] == 0
    assert summary["data"]["annotated_pixels"] > labels[0].size  # both frames' voxels
    assert load_model(out).spec.spatial_dims == 3


@pytest.mark.parametrize(
    "labels",
    [
        {"0": "background", "1": "cytoplasm", "2": "nucleus"},  # the Decathlon's
        {"background": 0, "cytoplasm": 1, "nucleus": 2},  # nnU-Net's
    ],
)
def test_a_decathlon_dataset_names_the_classes_from_its_dataset_json(tmp_path, capsys, labels):
    """Task/imagesTr/cells_000_0000.tif with Task/labelsTr/cells_000.tif (nnU-Net's
    names) and the class names of Task/dataset.json; nothing held out says so."""
    task = tmp_path / "Task01_Cells"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    for seed in (0, 1):
        image, truth = cells_2d((96, 128), seed=seed)
        tifffile.imwrite(task / "imagesTr" / f"cells_{seed:03d}_0000.tif", image)
        tifffile.imwrite(task / "labelsTr" / f"cells_{seed:03d}.tif", truth)
    (task / "dataset.json").write_text(json.dumps({"labels": labels, "numTraining": 2}))
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(task / "imagesTr"), "--labels", str(task / "labelsTr"),
            "--arch", "unet", "--val-fraction", "0", "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "class names from dataset.json: background, cytoplasm, nucleus" in captured.err
    assert "no validation IoU (nothing held out): the model is the last epoch's" in captured.out
    assert load_model(out).spec.class_names == ("background", "cytoplasm", "nucleus")
    # given names win; a dataset.json with regions (lists) says nothing
    assert main([*argv, "--overwrite", "--class-names", "bg", "cyto", "nuc"]) == 0
    assert load_model(out).spec.class_names == ("bg", "cyto", "nuc")
    (task / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "all": [1, 2]}}))
    assert main([*argv, "--overwrite"]) == 0
    assert load_model(out).spec.class_names != ("background", "cytoplasm", "nucleus")
    (task / "dataset.json").write_text("{not json")
    assert main([*argv, "--overwrite"]) == 1
    assert "dataset.json is not a dataset description" in capsys.readouterr().err


def test_an_nnunet_ignore_label_is_left_out_and_is_no_class(tmp_path, capsys):
    """nnU-Net v2 names the pixels to leave out "ignore", with the largest id: they
    train nothing and are no class (they were trained as a class named 'ignore')."""
    from skimage.segmentation import find_boundaries

    task = tmp_path / "Dataset001_Cells"
    (task / "imagesTr").mkdir(parents=True)
    (task / "labelsTr").mkdir()
    for seed in (0, 1):
        image, truth = cells_2d((96, 128), seed=seed)
        truth = truth.astype(np.uint8)
        truth[find_boundaries(truth, mode="inner")] = 3  # unsure: left to the ignore label
        tifffile.imwrite(task / "imagesTr" / f"cells_{seed:03d}_0000.tif", image)
        tifffile.imwrite(task / "labelsTr" / f"cells_{seed:03d}.tif", truth)
    labels = {"background": 0, "cytoplasm": 1, "nucleus": 2, "ignore": 3}
    (task / "dataset.json").write_text(json.dumps({"labels": labels, "numTraining": 2}))
    out = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(task / "imagesTr"), "--labels", str(task / "labelsTr"),
            "--val-fraction", "0", "--out", str(out), *FAST]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "train: id 3 left out, as dataset.json's 'ignore' label says" in err
    assert "class names from dataset.json: background, cytoplasm, nucleus\n" in err
    assert load_model(out).spec.class_names == ("background", "cytoplasm", "nucleus")
    summary = json.loads((tmp_path / "m.training.json").read_text())
    assert summary["config"]["ignore_labels"] == [3]
    truths = [tifffile.imread(p) for p in sorted((task / "labelsTr").iterdir())]
    kept = np.concatenate([t[t != 3] for t in truths])
    assert summary["data"]["class_pixels"] == np.bincount(kept).tolist()


def test_a_voc_style_void_id_is_left_out_with_ignore(tmp_path, capsys):
    """Pascal VOC's masks: palette PNGs whose index 255 outlines every object (void)."""
    from PIL import Image
    from skimage.segmentation import find_boundaries

    for folder in ("JPEGImages", "SegmentationClass"):
        (tmp_path / folder).mkdir()
    for seed in (0, 1):
        image, labels = cells_2d((96, 128), seed=seed)
        mask = labels.astype(np.uint8)
        mask[find_boundaries(labels, mode="inner")] = 255
        tifffile.imwrite(tmp_path / "JPEGImages" / f"{seed}.tif", image)
        png = Image.fromarray(mask, mode="P")
        png.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        png.save(tmp_path / "SegmentationClass" / f"{seed}.png")
    out = tmp_path / "voc.safetensors"
    argv = ["train", "--image", str(tmp_path / "JPEGImages"), "--labels-suffix", ""]
    argv += ["--labels", str(tmp_path / "SegmentationClass"), "--out", str(out), *FAST]
    assert main(argv) == 1
    assert "(--ignore 255;" in capsys.readouterr().err
    assert main([*argv, "--ignore", "255"]) == 0
    assert load_model(out).spec.num_classes == int(cells_2d((96, 128), seed=0)[1].max()) + 1
    summary = json.loads((tmp_path / "voc.training.json").read_text())
    assert summary["config"]["ignore_labels"] == [255]
    assert len(summary["data"]["class_pixels"]) == load_model(out).spec.num_classes


def test_a_fixed_intensity_window_is_recorded_and_used_by_predict(files, tmp_path, capsys):
    """``--normalization window --window LOW HIGH`` (a CT's Hounsfield units, as MONAI's
    ``ScaleIntensityRange(clip=True)``): the new model's card records it, a config file
    gives it as a list, ``info`` shows it, and ``predict`` maps intensities through it
    (two images brighter than the window are the same input to the network)."""
    out = tmp_path / "ct.safetensors"
    pair = ["--image", str(files["image0"]), "--labels", str(files["labels0"])]
    argv = ["train", *pair, "--arch", "unet", "--out", str(out), *FAST]
    assert main([*argv, "--normalization", "window", "--window", "0", "200"]) == 0
    assert load_model(out).spec.normalization.window == (0.0, 200.0)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "normalization: window 0 to 200, clipped" in capsys.readouterr().out
    config = tmp_path / "ct.yaml"
    config.write_text("normalization: window\nnormalization_window: [-10, 90]\n")
    assert main([*argv, "--config", str(config), "--overwrite"]) == 0
    assert load_model(out).spec.normalization.window == (-10.0, 90.0)
    image = tifffile.imread(files["image0"]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "bright.tif", image + 5000)  # both above the window: all 1
    tifffile.imwrite(tmp_path / "brighter.tif", image * 3 + 6000)
    inputs = [str(tmp_path / "bright.tif"), str(tmp_path / "brighter.tif")]
    assert main(["predict", "--model", str(out), "--output", str(tmp_path / "p"), *inputs]) == 0
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "p" / "bright_labels.tif"),
        tifffile.imread(tmp_path / "p" / "brighter_labels.tif"),
    )  # per-image percentiles would have seen two different images
    # --window alone asks for window normalisation (it was refused as "not 'percentile'")
    other = [*argv[: -len(FAST) - 2], "--out", str(tmp_path / "ct2.safetensors"), *FAST]
    assert main([*other, "--window", "0", "150"]) == 0
    assert load_model(tmp_path / "ct2.safetensors").spec.normalization.window == (0.0, 150.0)
    capsys.readouterr()
    assert main([*argv, "--normalization", "minmax", "--window", "0", "200", "--overwrite"]) == 1
    assert "an intensity window is used by normalization 'window', not 'minmax'" in (
        capsys.readouterr().err
    )
    create = ["create", "--arch", "unet", "--in-channels", "1", "--classes", "2"]
    assert main([*create, "--window", "-40", "80", "--out", str(tmp_path / "ct0.safetensors")]) == 0
    assert load_model(tmp_path / "ct0.safetensors").spec.normalization.window == (-40.0, 80.0)
    # fine-tuning keeps the model's own window, and now says so (it was silent)
    tuned = tmp_path / "tuned.safetensors"
    again = ["train", *pair, "--from-model", str(out), "--out", str(tuned), *FAST[:-1]]
    assert main([*again, "--normalization", "minmax"]) == 0
    assert load_model(tuned).spec.normalization.window == (-10.0, 90.0)
    assert "fine-tuning keeps the model's normalisation (window -10 to 90, clipped)" in (
        capsys.readouterr().err
    )


def test_fine_tuning_says_it_keeps_the_models_network(files, tmp_path, capsys):
    """``--arch``, ``--encoder`` and ``--option`` build new models: given with
    ``--from-model`` they were ignored without a word; the run now says the model
    keeps its own network (and still fine-tunes it)."""
    base = tmp_path / "base.safetensors"
    pair = ["--image", str(files["image0"]), "--labels", str(files["labels0"])]
    assert main(["train", *pair, "--arch", "unet", "--out", str(base), *FAST]) == 0
    capsys.readouterr()
    tuned = tmp_path / "tuned.safetensors"
    again = ["train", *pair, "--from-model", str(base), "--out", str(tuned), *FAST]
    assert main([*again, "--arch", "fpn", "--encoder", "resnet18", "--option", "depth=2"]) == 0
    err = capsys.readouterr().err
    assert "fine-tuning keeps the model's network, unet (" in err
    assert "architecture fpn, encoder resnet18, option depth=2 asked build new models" in err
    assert load_model(tuned).spec.architecture == "unet"
    assert main([*again, "--overwrite"]) == 0  # nothing asked: nothing said
    assert "keeps the model's network" not in capsys.readouterr().err


def test_a_model_named_as_a_pickle_is_refused_before_training(files, tmp_path, capsys):
    """``--out model.pt`` trained, then wrote a safetensors file that torch.load (what a
    ``.pt`` is for) cannot read. It is refused before any work, with the name to use."""
    pair = ["--image", str(files["image0"]), "--labels", str(files["labels0"])]
    out = tmp_path / "model.pt"
    assert main(["train", *pair, "--arch", "unet", "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "model.pt: a model file is written as safetensors" in err
    assert "name it model.safetensors" in err
    assert not list(tmp_path.glob("model*"))


def test_patience_without_validation_is_said_to_do_nothing(tmp_path, capsys):
    """--patience 3 --val-fraction 0: no score to stop on, so the run went its whole
    budget while the user expected early stopping, without a word."""
    from napari_seg.cli import build_parser
    from napari_seg.cli.train import build_config

    base = ["train", "--image", "a.tif", "--labels", "b.tif", "--out", str(tmp_path / "m")]
    parser = build_parser()
    config = build_config(parser.parse_args([*base, "--patience", "3", "--val-fraction", "0"]))
    assert config.patience == 3
    assert "--patience has no effect without validation" in capsys.readouterr().err
    for extra in (["--patience", "3"], ["--val-fraction", "0"]):  # either alone: fine
        build_config(parser.parse_args([*base, *extra]))
        assert "--patience" not in capsys.readouterr().err


def test_fine_tuning_a_model_of_three_channels_on_a_one_channel_z_stack_is_refused(
    tmp_path, capsys
):
    """A file naming its axes ``ZYX`` holds one channel: its 3 slices are no colours."""
    from napari_seg.models import ModelSpec, create_model, save_model

    spec = ModelSpec("unet", in_channels=3, num_classes=2, options={"depth": 2, "base_width": 4})
    save_model(create_model(spec), tmp_path / "rgb.safetensors")
    pairs = [cells_2d((64, 64), seed=seed) for seed in range(3)]
    stack = np.stack([image for image, _ in pairs])
    tifffile.imwrite(tmp_path / "z.ome.tif", stack, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "z_labels.tif", np.stack([labels for _, labels in pairs]))
    argv = ["train", "--image", str(tmp_path / "z.ome.tif"), "--labels",
            str(tmp_path / "z_labels.tif"), "--from-model", str(tmp_path / "rgb.safetensors"),
            "--epochs", "1", "--steps-per-epoch", "1", "--patch", "32", "--device", "cpu",
            "--quiet", "--out", str(tmp_path / "t.safetensors")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "names its axes ZYX, none of them channels" in err
    assert not (tmp_path / "t.safetensors").exists()
