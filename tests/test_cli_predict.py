import json
import os

import numpy as np
import pytest
import tifffile
import torch

from napari_seg.cli import main
from napari_seg.inference import PredictConfig, predict
from napari_seg.models import ModelSpec, create_model, load_model, save_model
from napari_seg.sample_data import cells_2d, cells_3d


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        encoder="classic",
        in_channels=1,
        num_classes=3,
        options={"depth": 3, "base_width": 8},
    )
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_model(create_model(spec), path)
    return path


@pytest.fixture(scope="module")
def image():
    return cells_2d((150, 210), seed=1)[0]


def _expected(model_file, image, **kwargs):
    return predict(load_model(model_file), image, tile=64, precision="fp32", **kwargs)


def _args(model_file, out, *inputs, extra=()):
    return [
        "predict",
        "--model",
        str(model_file),
        "--output",
        str(out),
        "--tile",
        "64",
        "--precision",
        "fp32",
        "--quiet",
        *extra,
        *map(str, inputs),
    ]


def test_every_input_format_gives_the_core_labels(model_file, image, tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    import imageio.v3 as iio

    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "plain.tif", image)
    tifffile.imwrite(src / "packed.tiff", image, compression="zlib", tile=(64, 64))
    np.save(src / "array.npy", image)
    z = zarr.open(
        str(src / "store.zarr"), mode="w", shape=image.shape, chunks=(64, 64), dtype=image.dtype
    )
    z[:] = image
    png = (image // 256).astype(np.uint8)
    iio.imwrite(src / "picture.png", png)
    inputs = ["plain.tif", "packed.tiff", "array.npy", "store.zarr", "picture.png"]
    out = tmp_path / "out"
    assert main(_args(model_file, out, *(src / i for i in inputs))) == 0
    expected = _expected(model_file, image).labels
    for name in inputs[:4]:
        labels = tifffile.imread(out / f"{name.split('.')[0]}_labels.tif")
        np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(
        tifffile.imread(out / "picture_labels.tif"), _expected(model_file, png).labels
    )
    assert "plain.tif ->" in capsys.readouterr().out
    with tifffile.TiffFile(out / "plain_labels.tif") as tif:
        assert tif.shaped_metadata[0]["classes"] == ["background", "class 1", "class 2"]


def test_probabilities_and_stacks(model_file, tmp_path):
    stack = cells_3d((3, 64, 80), seed=2)[0]
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    out = tmp_path / "out"
    args = _args(model_file, out, tmp_path / "stack.tif", extra=("--axis", "0", "--probabilities"))
    assert main(args) == 0
    labels = tifffile.imread(out / "stack_labels.tif")
    assert labels.shape == stack.shape
    assert labels.dtype == np.uint8
    expected = _expected(model_file, stack, axis=0, probabilities=True)
    np.testing.assert_array_equal(labels, expected.labels)
    # Class planes as ImageJ channels (Z, C, Y, X), named: never an RGB image
    with tifffile.TiffFile(out / "stack_probabilities.tif") as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "ZCYX"
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert tif.imagej_metadata["channels"] == 3
        assert tif.imagej_metadata["Labels"][:3] == ["background", "class 1", "class 2"]
        probs = tif.asarray()
    assert probs.dtype == np.float32
    np.testing.assert_allclose(np.moveaxis(probs, 1, 0), expected.probabilities, atol=1e-3)


def test_a_plane_of_three_class_probabilities_is_not_written_as_rgb(model_file, image, tmp_path):
    tifffile.imwrite(tmp_path / "img.tif", image)
    out = tmp_path / "out"
    assert main(_args(model_file, out, tmp_path / "img.tif", extra=("--probabilities",))) == 0
    with tifffile.TiffFile(out / "img_probabilities.tif") as tif:
        assert tif.series[0].axes == "CYX"
        assert tif.series[0].shape == (3, *image.shape)
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK


def test_config_file_is_read_and_flags_override_it(model_file, image, tmp_path):
    tifffile.imwrite(tmp_path / "img.tif", image)
    config = tmp_path / "predict.json"
    config.write_text(json.dumps({"tile": 32, "overlap": 8, "blending": "cosine"}))
    out = tmp_path / "out"
    assert main(_args(model_file, out, tmp_path / "img.tif", extra=("--config", str(config)))) == 0
    # --tile 64 in _args overrides the file's 32; overlap and blending come from the file.
    expected = _expected(model_file, image, overlap=8, blending="cosine").labels
    np.testing.assert_array_equal(tifffile.imread(out / "img_labels.tif"), expected)
    config.write_text("{not json")
    assert main(_args(model_file, out, tmp_path / "img.tif", extra=("--config", str(config)))) == 1


def test_tta_mirrors_each_tile_and_a_config_file_can_ask_for_it(model_file, image, tmp_path):
    tifffile.imwrite(tmp_path / "img.tif", image)
    out, probs = tmp_path / "out", tmp_path / "out" / "img_probabilities.tif"
    extra = ("--probabilities", "--overwrite")
    mirrored = _expected(model_file, image, tta=True, probabilities=True).probabilities
    plain = _expected(model_file, image, probabilities=True).probabilities
    assert np.abs(mirrored.astype(np.float32) - plain).max() > 1e-3
    assert main(_args(model_file, out, tmp_path / "img.tif", extra=(*extra, "--tta"))) == 0
    np.testing.assert_allclose(tifffile.imread(probs), mirrored, atol=1e-3)
    config = tmp_path / "predict.yaml"
    config.write_text("tta: true\n")
    args = _args(model_file, out, tmp_path / "img.tif", extra=(*extra, "--config", str(config)))
    assert main(args) == 0
    np.testing.assert_allclose(tifffile.imread(probs), mirrored, atol=1e-3)
    assert main([*args, "--no-tta"]) == 0  # the flag wins over the file
    np.testing.assert_allclose(tifffile.imread(probs), plain, atol=1e-3)
    assert "tta" not in PredictConfig().to_dict()  # a resumed block run's settings compare
    assert PredictConfig.from_dict(PredictConfig(tta=True).to_dict()).tta is True


def test_several_models_predict_as_an_ensemble(model_file, image, tmp_path, capsys):
    from napari_seg.models import ensemble

    torch.manual_seed(5)
    spec = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    second = tmp_path / "second.safetensors"
    save_model(create_model(spec), second)
    tifffile.imwrite(tmp_path / "img.tif", image)
    out = tmp_path / "out"
    extra = ("--model", str(second), "--probabilities")
    assert main(_args(model_file, out, tmp_path / "img.tif", extra=extra)) == 0
    assert "an ensemble of 2 models" in capsys.readouterr().err
    both = ensemble([load_model(model_file), load_model(second)])
    expected = predict(both, image, tile=64, precision="fp32", probabilities=True)
    np.testing.assert_array_equal(tifffile.imread(out / "img_labels.tif"), expected.labels)
    alone = _expected(model_file, image, probabilities=True).probabilities.astype(np.float32)
    probs = tifffile.imread(out / "img_probabilities.tif")
    np.testing.assert_allclose(probs, expected.probabilities, atol=1e-3)
    assert np.abs(probs - alone).max() > 1e-3  # not the first model alone
    # block by block too (tests/scaleout: the same labels as in one process)
    extra = ("--model", str(second), "--output-format", "ome-zarr")
    assert main(_args(model_file, tmp_path / "z", tmp_path / "img.tif", extra=extra)) == 0
    assert "an ensemble of 2 models" in capsys.readouterr().err
    assert (tmp_path / "z" / "img_labels.ome.zarr").is_dir()


def test_bad_inputs_fail_clearly_and_the_good_ones_are_still_written(
    model_file, image, tmp_path, capsys
):
    tifffile.imwrite(tmp_path / "good.tif", image)
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((64, 64, 3), np.uint8))
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 64, 64), np.uint8))
    tifffile.imwrite(tmp_path / "dot.tif", np.zeros((1, 1), np.uint8))
    tifffile.imwrite(tmp_path / "nan.tif", np.full((32, 32), np.nan, np.float32))
    (tmp_path / "notes.txt").write_text("hello")
    np.save(tmp_path / "text.npy", np.array([["a"] * 20] * 20))
    bad = ["rgb.tif", "stack.tif", "dot.tif", "nan.tif", "notes.txt", "text.npy", "missing.tif"]
    out = tmp_path / "out"
    inputs = [tmp_path / "good.tif", *(tmp_path / b for b in bad)]
    assert main(_args(model_file, out, *inputs)) == 1
    err = capsys.readouterr().err
    for needle in (
        "rgb.tif: the model expects 1 input channel",
        "stack.tif: image of shape (3, 64, 64) has 3 non-channel axes",
        "dot.tif: image planes of 1x1 pixels are too small",
        "nan.tif: the image has no finite value in channel 0",
        "notes.txt: unsupported input",
        "text.npy holds values that are not numbers (<U1)",
        "missing.tif: input not found",
        "7 of 8 input(s) failed",
    ):
        assert needle in err
    assert sorted(os.listdir(out)) == ["good_labels.tif"]


def test_usage_errors(model_file, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for folder in (a, b):
        tifffile.imwrite(folder / "same.tif", np.zeros((32, 32), np.uint8))
    assert main(_args(model_file, tmp_path / "out", a / "same.tif", b / "same.tif")) == 1
    assert "several inputs would write the same outputs: same" in capsys.readouterr().err
    assert main(_args(tmp_path / "nope.safetensors", tmp_path / "out", a / "same.tif")) == 1
    assert "nope.safetensors" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(model_file, tmp_path / "out", a / "same.tif", extra=("--axis", "z")))
    assert "expected integers" in capsys.readouterr().err


def test_an_output_named_as_a_file_is_refused_not_made_a_folder(
    model_file, image, tmp_path, capsys
):
    """``--output seg.tif`` made a folder "seg.tif" holding NAME_labels.tif; ``--out``, as
    create and train spell it, was "ambiguous" between --output and --output-format."""
    tifffile.imwrite(tmp_path / "cells.tif", image)
    for name in ("seg.tif", "seg.nii.gz", "SEG.PNG"):
        assert main(_args(model_file, tmp_path / name, tmp_path / "cells.tif")) == 1
        err = capsys.readouterr().err
        assert f"--output {name} ends as a {name[3:]} file does, but it names the folder" in err
        assert f"give a folder name, e.g. {name[:3]}" in err
        assert not (tmp_path / name).exists()
    (tmp_path / "file.npy").write_bytes(b"")
    assert main(_args(model_file, tmp_path / "file.npy", tmp_path / "cells.tif")) == 1
    assert "is a file; give a folder" in capsys.readouterr().err
    (tmp_path / "made.tif").mkdir()  # a folder of that name that exists is used
    short = [arg if arg != "--output" else "--out" for arg in _args(model_file, "x", "y")]
    for out in ("made.tif", "labels.zarr", "run.2024"):
        args = [*short[:4], str(tmp_path / out), *short[5:-1], str(tmp_path / "cells.tif")]
        assert main(args) == 0
        assert (tmp_path / out / "cells_labels.tif").is_file()


def test_a_device_that_is_not_here_is_one_error_before_any_input(model_file, tmp_path, capsys):
    """``--device gpu`` (or CUDA on a machine without one) failed each input in turn with
    the same message, "3 of 3 input(s) failed"; it is one usage error, before any input
    is read."""
    names = [tmp_path / f"{k}.tif" for k in range(3)]
    for name in names:
        tifffile.imwrite(name, np.zeros((32, 32), np.uint8))
    assert main(_args(model_file, tmp_path / "out", *names, extra=("--device", "gpu"))) == 1
    err = capsys.readouterr().err
    assert err.count("unknown device 'gpu'") == 1
    assert "napari-seg predict: error: unknown device 'gpu'" in err
    assert "input(s) failed" not in err
    assert not (tmp_path / "out").exists()


def test_a_failed_write_leaves_the_previous_output_intact(model_file, image, tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "img.tif", image)
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "img_labels.tif"
    previous.write_bytes(b"an earlier result")
    real = tifffile.imwrite

    def crash(handle, data, **kwargs):
        real(handle, data[: len(data) // 2], **kwargs)  # half the data, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", crash)
    called = []
    monkeypatch.setattr(tifffile, "imwrite", lambda *a, **k: (called.append(1), crash(*a, **k)))
    assert main(_args(model_file, out, tmp_path / "img.tif", extra=("--overwrite",))) == 1
    assert called, "the write was never attempted"
    assert previous.read_bytes() == b"an earlier result"
    assert os.listdir(out) == ["img_labels.tif"]  # no temporary file left behind


def test_existing_outputs_such_as_ground_truth_are_never_replaced(model_file, image, tmp_path):
    """The issue's case: `predict --output d d/cells.tif` beside hand-made d/cells_labels.tif."""
    folder = tmp_path / "d"
    folder.mkdir()
    tifffile.imwrite(folder / "cells.tif", image)
    truth = np.zeros(image.shape, np.uint8)
    truth[10:20, 10:20] = 2
    tifffile.imwrite(folder / "cells_labels.tif", truth)
    before = (folder / "cells_labels.tif").read_bytes()
    assert main(_args(model_file, folder, folder / "cells.tif")) == 1
    assert (folder / "cells_labels.tif").read_bytes() == before
    assert sorted(os.listdir(folder)) == ["cells.tif", "cells_labels.tif"]
    assert main(_args(model_file, folder, folder / "cells.tif", extra=("--overwrite",))) == 0
    expected = _expected(model_file, image).labels
    np.testing.assert_array_equal(tifffile.imread(folder / "cells_labels.tif"), expected)


def test_an_output_never_replaces_an_input_of_the_batch(model_file, image, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "x.tif", image)
    labels = np.ones(image.shape, np.uint8)
    tifffile.imwrite(tmp_path / "x_labels.tif", labels)
    before = (tmp_path / "x_labels.tif").read_bytes()
    inputs = (tmp_path / "x.tif", tmp_path / "x_labels.tif")
    for extra in ((), ("--overwrite",)):
        assert main(_args(model_file, tmp_path, *inputs, extra=extra)) == 1
        assert "would replace input(s) of this batch" in capsys.readouterr().err
        assert (tmp_path / "x_labels.tif").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["x.tif", "x_labels.tif"]


def test_refusal_lists_existing_outputs_before_any_work(model_file, image, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
    (out / "b_labels.tif").write_bytes(b"earlier result")
    inputs = (tmp_path / "a.tif", tmp_path / "b.tif")
    assert main(_args(model_file, out, *inputs)) == 1
    err = capsys.readouterr().err
    assert "b_labels.tif already exist; pass --overwrite" in err
    assert sorted(os.listdir(out)) == ["b_labels.tif"]  # a.tif was not segmented either


def test_a_folder_of_images_is_segmented_file_by_file(model_file, image, tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "plate"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", image)
    np.save(src / "b.npy", image[::-1])
    zarr.open_array(str(src / "c.zarr"), mode="w", shape=image.shape, dtype=image.dtype)[:] = image
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.tif").write_bytes(b"")
    out = tmp_path / "out"
    assert main(_args(model_file, out, src)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a_labels.tif", "b_labels.tif", "c_labels.tif",
    ]  # fmt: skip
    np.testing.assert_array_equal(
        tifffile.imread(out / "b_labels.tif"), _expected(model_file, image[::-1]).labels
    )
    (tmp_path / "empty").mkdir()
    assert main(_args(model_file, out, tmp_path / "empty")) == 1
    assert "a folder without image files" in capsys.readouterr().err
    for name in ("plate 1", "plate 2"):  # a dataset's root: folders only
        (tmp_path / "root" / name).mkdir(parents=True)
    assert main(_args(model_file, out, tmp_path / "root")) == 1
    assert "it holds folders (plate 1, plate 2): give those" in capsys.readouterr().err


def test_label_files_beside_their_images_are_not_inputs(model_file, image, tmp_path, capsys):
    src = tmp_path / "data"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", image)
    tifffile.imwrite(src / "a_labels.tif", (image > image.mean()).astype(np.uint8))
    tifffile.imwrite(src / "b_labels.tif", image)  # no b.tif: an image like any other
    assert main(_args(model_file, src, src, extra=["--overwrite"])) == 0
    assert "1 label file(s) beside their images are not inputs: a_labels.tif" in (
        capsys.readouterr().err
    )
    assert main(_args(model_file, src, src, extra=["--overwrite"])) == 0  # once more
    assert "2 label file(s) beside their images are not inputs: a_labels.tif, b_labels_" in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in src.iterdir()) == [
        "a.tif", "a_labels.tif", "b_labels.tif", "b_labels_labels.tif",
    ]  # fmt: skip


def test_objects_of_a_stack_are_numbered_slice_by_slice(model_file, image, tmp_path, capsys):
    from napari_seg.refine import number_objects

    stack = np.stack([image, image[:, ::-1], image[::-1]])
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    out = tmp_path / "out"
    assert (
        main(_args(model_file, out, tmp_path / "stack.tif", extra=["--axis", "0", "--objects"]))
        == 0
    )
    labels = tifffile.imread(out / "stack_labels.tif")
    objects = tifffile.imread(out / "stack_objects.tif")
    spec = load_model(model_file).spec
    expected = number_objects(labels, spec.class_names, background=spec.background, slice_axes=(0,))
    np.testing.assert_array_equal(objects, expected)
    assert objects.max() > 0
    # not block by block; not for a model without a background: refused before any work
    extra = ["--objects", "--output-format", "ome-zarr"]
    assert main(_args(model_file, tmp_path / "z", tmp_path / "stack.tif", extra=extra)) == 1
    assert "--objects needs each whole prediction in memory" in capsys.readouterr().err
    spec = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                     options={"depth": 3, "base_width": 8}, untrained_classes=(0,),
                     class_names=("unlabelled", "a", "b"), background=None)  # fmt: skip
    strokes = tmp_path / "strokes.safetensors"
    save_model(create_model(spec), strokes)
    assert (
        main(
            _args(
                strokes, tmp_path / "s", tmp_path / "stack.tif", extra=["--axis", "0", "--objects"]
            )
        )
        == 1
    )
    assert "no background class" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_fiji_time_lapse_is_segmented_frame_by_frame_without_axis(model_file, image, tmp_path):
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    tifffile.imwrite(tmp_path / "movie.tif", stack, imagej=True, metadata={"axes": "TYX"})
    out = tmp_path / "out"
    extra = ["--probabilities", "--objects"]
    assert main(_args(model_file, out, tmp_path / "movie.tif", extra=extra)) == 0
    expected = _expected(model_file, stack, axis=0).labels
    np.testing.assert_array_equal(tifffile.imread(out / "movie_labels.tif"), expected)
    # Uncalibrated, the outputs still name the frames (Fiji, tifffile, refine see them).
    for name, axes in [("labels", "TYX"), ("objects", "TYX"), ("probabilities", "TCYX")]:
        with tifffile.TiffFile(out / f"movie_{name}.tif") as tif:
            assert tif.series[0].axes == axes


def test_a_one_channel_model_on_a_two_channel_hyperstack_says_what_to_do(
    model_file, image, tmp_path, capsys
):
    stack = np.stack([np.stack([image, image[::-1]])] * 2)  # T, C, Y, X
    tifffile.imwrite(tmp_path / "two.tif", stack, imagej=True, metadata={"axes": "TCYX"})
    out = tmp_path / "out"
    assert main(_args(model_file, out, tmp_path / "two.tif")) == 1
    err = capsys.readouterr().err
    assert "holds 2 channels (its C axis, axis 1) and the model reads 1" in err
    assert "Split Channels" in err
    assert not (out / "two_labels.tif").exists()
    one = stack[:, :1]  # one channel named C: read as it always was
    tifffile.imwrite(tmp_path / "one.tif", one, imagej=True, metadata={"axes": "TCYX"})
    assert main(_args(model_file, out, tmp_path / "one.tif")) == 0


def test_a_file_naming_no_channel_axis_is_one_channel_to_a_model_of_three(image, tmp_path, capsys):
    """An OME-TIFF z-stack of 3 slices (``ZYX``; tifffile drops a ``C`` of one) given
    to an RGB model: its Z axis was taken for the colours and 3 slices came back as
    one plane's labels (with ``--axis 0``: as one plane of T)."""
    spec = ModelSpec("unet", in_channels=3, num_classes=2, options={"depth": 2, "base_width": 4})
    save_model(create_model(spec), tmp_path / "rgb.safetensors")
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    tifffile.imwrite(tmp_path / "z.ome.tif", stack, metadata={"axes": "ZYX"})
    tifffile.imwrite(
        tmp_path / "tz.ome.tif", stack[None, None].repeat(2, 0), metadata={"axes": "TCZYX"}
    )
    out = tmp_path / "out"
    for name, extra in [("z", []), ("tz", ["--axis", "0"])]:
        argv = _args(tmp_path / "rgb.safetensors", out, tmp_path / f"{name}.ome.tif", extra=extra)
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "none of them channels, so the image holds one channel and the model reads 3" in err
        assert not (out / f"{name}_labels.tif").exists()
    # Told that the axis holds channels, it reads them.
    argv = _args(tmp_path / "rgb.safetensors", out, tmp_path / "z.ome.tif")
    assert main([*argv, "--channel-axis", "0"]) == 0
    assert tifffile.imread(out / "z_labels.tif").shape == image.shape


def test_channel_picks_one_channel_of_a_hyperstack_for_a_one_channel_model(
    model_file, image, tmp_path, capsys
):
    """--channel N: the labels of that channel alone, with the file's other axes."""
    other = image[::-1, ::-1]
    stack = np.stack([np.stack([other, image])] * 2)  # T, C, Y, X
    tifffile.imwrite(tmp_path / "two.tif", stack, imagej=True, metadata={"axes": "TCYX"})
    out = tmp_path / "out"
    assert main(_args(model_file, out, tmp_path / "two.tif", extra=["--channel", "1"])) == 0
    expected = _expected(model_file, stack[:, 1], axis=0).labels
    with tifffile.TiffFile(out / "two_labels.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), expected)
        assert tif.series[0].axes == "TYX"
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, image)
    assert main(_args(model_file, out, plain, extra=["--channel", "0"])) == 1
    assert "--channel needs a channel axis" in capsys.readouterr().err
    assert main(_args(model_file, out, tmp_path / "two.tif",
                      extra=["--channel", "2", "--overwrite"])) == 1  # fmt: skip
    assert "channel 2 is out of range: the image has 2 channel(s)" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_channel_reads_one_colour_of_an_rgb_image(model_file, image, tmp_path, capsys, suffix):
    """--channel 1 on an RGB PNG or TIFF reads its green channel; it asked for a
    --channel-axis the file cannot name (and the error for an RGB image did not
    mention --channel)."""
    import imageio.v3 as iio

    rgb = np.stack([image[::-1], image, image[:, ::-1]], axis=-1)
    rgb = (255 * (rgb - rgb.min()) / (rgb.max() - rgb.min())).astype(np.uint8)
    path = tmp_path / f"colour{suffix}"
    iio.imwrite(path, rgb)
    out = tmp_path / "out"
    assert main(_args(model_file, out, path)) == 1
    assert "read one channel (--channel N on the command line" in capsys.readouterr().err
    assert main(_args(model_file, out, path, extra=["--channel", "1"])) == 0
    expected = _expected(model_file, rgb[..., 1]).labels
    np.testing.assert_array_equal(tifffile.imread(out / "colour_labels.tif"), expected)


def test_an_ome_zarr_time_lapse_of_stacks_goes_slice_by_slice_as_a_tiff_does(
    model_file, image, tmp_path
):
    """An OME-Zarr image whose axes say (t, z, y, x) is segmented plane by plane with
    no --axis, as a TIFF naming TZYX is (it was refused: "4 non-channel axes")."""
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    from napari_seg._headers import file_axes

    stack = np.stack([image, image[::-1], image[:, ::-1], image[::-1, ::-1]]).reshape(
        2, 2, *image.shape
    )
    source = tmp_path / "movie.ome.zarr"
    write_image(stack, zarr.open_group(str(source), mode="w", zarr_format=2), axes="tzyx",
                fmt=FormatV04())  # fmt: skip
    assert file_axes(source, None, 4) == "TZYX"
    assert file_axes(source, None, 3) is None  # letters for another array
    out = tmp_path / "out"
    assert main(_args(model_file, out, source)) == 0
    expected = _expected(model_file, stack, axis=(0, 1)).labels
    np.testing.assert_array_equal(tifffile.imread(out / "movie_labels.tif"), expected)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_ome_zarr_s_channels_and_pixel_size_are_read_as_a_tiff_s(
    model_file, image, tmp_path, capsys, version
):
    """An OME-Zarr image of axes (c, y, x) in micrometres: a one-channel model is told
    to pick a channel of its C axis (it was told to go through axis 0 slice by slice),
    --channel picks one, and the TIFF labels keep the pixel size (they were written
    uncalibrated, so napari and Fiji showed them at 1 unit per pixel)."""
    zarr = pytest.importorskip("zarr")
    channels = np.stack([image[::-1], image])
    store = tmp_path / "two.ome.zarr"
    group = zarr.open_group(str(store), mode="w", zarr_format=2 if version == "0.4" else 3)
    group.create_array("0", data=channels, chunks=(1, 64, 64))
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "yx"
    ]
    level = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.4]}]}
    multiscales = [{"version": version, "axes": axes, "datasets": [level]}]
    if version == "0.4":
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": version, "multiscales": multiscales}
    out = tmp_path / "out"
    assert main(_args(model_file, out, store)) == 1
    assert "2 channels (its C axis, axis 0)" in capsys.readouterr().err
    assert main(_args(model_file, out, store, extra=("--channel", "1"))) == 0
    with tifffile.TiffFile(out / "two_labels.tif") as tif:
        labels, meta = tif.asarray(), tif.imagej_metadata
        x_res, y_res = (tif.pages[0].tags[t].value for t in ("XResolution", "YResolution"))
    np.testing.assert_array_equal(labels, _expected(model_file, image).labels)
    assert meta["unit"] == "micron"
    assert x_res[1] / x_res[0] == pytest.approx(0.4)
    assert y_res[1] / y_res[0] == pytest.approx(0.5)


def test_a_channel_view_reads_regions_of_one_channel():
    from napari_seg.arrays.views import ChannelView

    array = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    view = ChannelView(array, 1, -1)
    assert (view.shape, view.ndim, view.dtype) == ((2, 4, 5), 3, array.dtype)
    np.testing.assert_array_equal(np.asarray(view), array[:, 2])
    np.testing.assert_array_equal(view[1, 1:3], array[1, 2, 1:3])
    np.testing.assert_array_equal(view[..., 2], array[:, 2, :, 2])
    with pytest.raises(ValueError, match="out of range"):
        ChannelView(array, 4, 0)


def test_into_source_followed_by_the_input_names_the_mix_up(tmp_path, capsys, monkeypatch):
    """``--into-source`` takes an optional labels name: ``--into-source plate.ome.zarr``
    (as the README once showed) took the image for the name and argparse said only
    "the following arguments are required: INPUT"; the image is now recognised and
    both right spellings are given. After the inputs, the option takes its default."""
    from napari_seg.cli import build_parser

    plate = tmp_path / "plate.ome.zarr"
    plate.mkdir()
    with pytest.raises(SystemExit):
        main(["predict", "--model", "m.safetensors", "--into-source", str(plate)])
    err = capsys.readouterr().err
    assert "is an input, not a labels name" in err
    assert f"--into-source NAME {plate}" in err
    args, _ = build_parser().parse_known_args(
        ["predict", "--model", "m.safetensors", str(plate), "--into-source"]
    )
    assert (args.inputs, args.into_source) == ([plate], "napari-seg")
    # A file here without a folder or .zarr in its name (a TIFF given by mistake).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cells.tif").write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["predict", "--model", "m.safetensors", "--into-source", "cells.tif"])
    assert "'cells.tif' is an input, not a labels name" in capsys.readouterr().err
    (tmp_path / "cells").mkdir()  # a name that is also a folder here is still a name
    monkeypatch.chdir(tmp_path)
    args, _ = build_parser().parse_known_args(
        ["predict", "--model", "m.safetensors", "--into-source", "cells", str(plate)]
    )
    assert (args.inputs, args.into_source) == ([plate], "cells")


def test_a_quoted_wildcard_is_expanded_as_a_shell_would(model_file, image, tmp_path, capsys):
    """Windows' cmd and PowerShell pass ``images\\*.tif`` on as it is, and so does a
    quoted pattern: "input not found: plate/*.tif". The pattern is now expanded
    (sorted) when no file has that name; one that matches nothing is named."""
    src = tmp_path / "plate"
    src.mkdir()
    for name in ("b.tif", "a.tif", "c.npy"):
        if name.endswith(".npy"):
            np.save(src / name, image)
        else:
            tifffile.imwrite(src / name, image)
    out = tmp_path / "out"
    assert main(_args(model_file, out, src / "*.tif")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "b_labels.tif"]
    assert main(_args(model_file, out, src / "*.png")) == 1
    assert "no file matches" in capsys.readouterr().err
    literal = src / "d[1].tif"  # a name that looks like a pattern is a name first
    tifffile.imwrite(literal, image)
    assert main(_args(model_file, out, literal)) == 0
    assert (out / "d[1]_labels.tif").exists()
