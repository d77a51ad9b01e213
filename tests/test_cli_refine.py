"""``napari-seg refine``: one operation or a pipeline over files and folders, clear errors."""

import numpy as np
import pytest
import tifffile

from napari_seg import refine
from napari_seg.cli import main
from napari_seg.sample_data import cells_3d


@pytest.fixture
def labels_file(tmp_path):
    _, labels = cells_3d((3, 40, 48), seed=2)
    labels = labels.astype(np.uint8)
    labels[:, 0, 0] = 2  # a speck in every plane
    path = tmp_path / "cells_labels.tif"
    tifffile.imwrite(path, labels)
    return path, labels


def test_one_operation_with_its_parameters(labels_file, tmp_path, capsys):
    path, labels = labels_file
    out = tmp_path / "out.tif"
    argv = [
        "refine",
        "--op",
        "remove_small_objects",
        "--min-size",
        "5",
        "--replace-with",
        "nearest",
    ]
    assert main([*argv, "--quiet", str(path), str(out)]) == 0
    expected = refine.remove_small_objects(labels, 5, replace_with="nearest")
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    np.testing.assert_array_equal(tifffile.imread(path), labels)  # input file untouched
    assert "pixels changed" in capsys.readouterr().out


def test_per_slice_and_list_parameters(labels_file, tmp_path):
    path, labels = labels_file
    out = tmp_path / "out.npy"
    assert (
        main(
            [
                "refine",
                "--op",
                "opening",
                "--radius",
                "1",
                "--classes",
                "1,2",
                "--per-slice",
                "--quiet",
                str(path),
                str(out),
            ]
        )
        == 0
    )
    expected = np.stack([refine.opening(p, 1, classes=[1, 2]) for p in labels])
    np.testing.assert_array_equal(np.load(out), expected)


def test_pipeline_over_a_folder(labels_file, tmp_path):
    path, labels = labels_file
    tifffile.imwrite(path.parent / "other_labels.tif", labels[:, ::-1])
    # what predict --probabilities writes beside the labels is no label file, nor is
    # the image a dataset keeps beside its labels (its intensities are no class ids)
    tifffile.imwrite(path.parent / "cells_probabilities.tif", np.full((2, 4), 0.5, np.float32))
    tifffile.imwrite(path.parent / "cells.tif", (labels * 40 + 7).astype(np.uint8))
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(
        "per_slice: true\n"
        "steps:\n"
        "  - op: remove_small_objects\n    params: {min_size: 4}\n"
        "  - op: relabel\n    params: {mapping: {1: 3}}\n"
    )
    out = tmp_path / "refined"
    assert main(["refine", "--pipeline", str(pipe), "--quiet", str(path.parent), str(out)]) == 0
    for name, source in (("cells_labels.tif", labels), ("other_labels.tif", labels[:, ::-1])):
        expected = refine.relabel(
            np.stack([refine.remove_small_objects(p, 4) for p in source]), {1: 3}
        )
        np.testing.assert_array_equal(tifffile.imread(out / name), expected)
    assert sorted(p.name for p in out.iterdir()) == ["cells_labels.tif", "other_labels.tif"]


def test_crf_reads_the_image_and_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.zeros((24, 24), np.uint8)
    labels[6:18, 6:18] = 1
    image = labels + rng.normal(0, 0.1, labels.shape).astype(np.float32)
    probs = np.stack([1.0 - 0.6 * labels, 0.6 * labels + 0.2]).astype(np.float32)
    tifffile.imwrite(tmp_path / "a_labels.tif", labels)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "a_probabilities.tif", probs)
    out = tmp_path / "crf.tif"
    argv = ["refine", "--op", "crf", "--iterations", "3", "--device", "cpu", "--quiet"]
    argv += [
        "--image",
        str(tmp_path / "a.tif"),
        "--probabilities",
        str(tmp_path / "a_probabilities.tif"),
    ]
    assert main([*argv, str(tmp_path / "a_labels.tif"), str(out)]) == 0
    expected = refine.crf_refine(probs, image, iterations=3, device="cpu")
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_a_crf_device_that_is_not_here_is_one_error_before_any_input(tmp_path, capsys):
    """``--device gpu`` failed each label file of a folder in turn; it is one usage
    error now, before any file is read or written."""
    folder = tmp_path / "in"
    folder.mkdir()
    probs = np.full((2, 16, 16), 0.5, np.float32)
    for name in ("a", "b"):
        tifffile.imwrite(folder / f"{name}_labels.tif", np.ones((16, 16), np.uint8))
        tifffile.imwrite(folder / f"{name}_probabilities.tif", probs)
        tifffile.imwrite(tmp_path / f"{name}.tif", np.ones((16, 16), np.float32))
    argv = ["refine", "--op", "crf", "--device", "gpu", "--quiet", "--image", str(tmp_path),
            "--probabilities", str(folder), str(folder), str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("unknown device 'gpu'") == 1
    assert "input(s) failed" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("named", [True, False])
def test_crf_reads_the_channels_of_a_two_channel_tiff(tmp_path, named):
    """A two-channel image (CYX) for YX labels: its channels are the CRF's, as for
    --channel-axis 0, whether Fiji named its C axis or the file names no axes (then
    the axis the labels lack)."""
    rng = np.random.default_rng(0)
    labels = np.zeros((24, 24), np.uint8)
    labels[6:18, 6:18] = 1
    image = np.stack([labels + rng.normal(0, 0.1, labels.shape), 1.0 - labels])
    image = image.astype(np.float32)
    probs = np.stack([1.0 - 0.6 * labels, 0.6 * labels + 0.2]).astype(np.float32)
    tifffile.imwrite(tmp_path / "a_labels.tif", labels)
    axes = {"imagej": True, "metadata": {"axes": "CYX"}} if named else {}
    tifffile.imwrite(tmp_path / "a.tif", image, **axes)
    tifffile.imwrite(tmp_path / "a_probabilities.tif", probs)
    out = tmp_path / "crf.tif"
    argv = ["refine", "--op", "crf", "--iterations", "3", "--device", "cpu", "--quiet",
            "--image", str(tmp_path / "a.tif"), "--probabilities",
            str(tmp_path / "a_probabilities.tif")]  # fmt: skip
    assert main([*argv, str(tmp_path / "a_labels.tif"), str(out)]) == 0
    expected = refine.crf_refine(probs, image, channel_axis=0, iterations=3, device="cpu")
    np.testing.assert_array_equal(tifffile.imread(out), expected)


def test_list_names_every_operation(capsys):
    assert main(["refine", "--list"]) == 0
    text = capsys.readouterr().out
    for name in refine.OPERATIONS:
        assert f"{name}:" in text
    assert "--min-size" in text


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--op", "blur"], "unknown refine operation 'blur'"),
        (
            ["--op", "opening", "--min-size", "3"],
            "opening does not take --min-size; it takes --radius",
        ),
        (["--op", "opening", "--radius", "big"], "radius must be an integer, got 'big'"),
        (
            ["--op", "crf"],
            "crf needs --image FILE (the image the labels were segmented from) "
            "and --probabilities FILE (napari-seg predict --probabilities writes",
        ),
        (["--op", "set_class", "--value", "2"], "set_class needs --region FILE"),
        ([], "give either --op NAME or --pipeline FILE"),
        (["--op", "merge_classes", "--sources", "1"], "target is required"),
    ],
)
def test_errors_are_one_line_and_nothing_is_written(labels_file, tmp_path, capsys, extra, words):
    path, _ = labels_file
    out = tmp_path / "out.tif"
    assert main(["refine", *extra, "--quiet", str(path), str(out)]) == 1
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err
    assert not out.exists()


def test_an_output_name_refine_cannot_write_is_refused_before_the_work(
    labels_file, tmp_path, capsys, monkeypatch
):
    """An OUTPUT of another format (a PNG, a folder for one file) was refused only once
    the labels were refined (a CRF of a volume: minutes) and read, not up front."""
    path, _ = labels_file
    ran = []
    real = refine.iter_refine
    monkeypatch.setattr(refine, "iter_refine", lambda *a, **k: ran.append(1) or real(*a, **k))
    for name in ("out.png", "newdir"):
        assert main(["refine", "--op", "opening", "--quiet", str(path), str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert "OUTPUT must end in .tif, .tiff, .npy or .nii, .nii.gz, .nrrd, .mha" in err
        assert err.rstrip().endswith(f"got {name}")
        assert not (tmp_path / name).exists()
    assert ran == []
    assert main(["refine", "--op", "opening", "--quiet", str(path), str(tmp_path / "o.tif")]) == 0
    assert ran == [1]


def test_float_labels_that_are_not_ids_are_refused(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "f.tif", np.full((8, 8), 0.5, np.float32))  # not ids
    assert (
        main(["refine", "--op", "majority", str(tmp_path / "f.tif"), str(tmp_path / "o.tif")]) == 1
    )
    assert "must hold integer labels" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_writing_over_its_own_input_needs_overwrite(labels_file, tmp_path, capsys):
    path, labels = labels_file
    argv = ["refine", "--op", "remove_small_objects", "--min-size", "5", "--quiet"]
    before = path.read_bytes()
    assert main([*argv, str(path), str(path)]) == 1
    assert "already exist; pass --overwrite" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main([*argv, "--overwrite", str(path), str(path)]) == 0
    np.testing.assert_array_equal(tifffile.imread(path), refine.remove_small_objects(labels, 5))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_an_output_never_replaces_another_input(labels_file, tmp_path, capsys):
    path, labels = labels_file
    reference = tmp_path / "reference.tif"
    tifffile.imwrite(reference, labels)
    before = reference.read_bytes()
    argv = ["refine", "--op", "instances_to_semantic", "--reference", str(reference), "--quiet"]
    assert main([*argv, "--overwrite", str(path), str(reference)]) == 1
    assert "would replace input(s)" in capsys.readouterr().err
    assert reference.read_bytes() == before


def test_a_folder_into_itself_and_clashing_names(labels_file, tmp_path, capsys):
    path, labels = labels_file
    np.save(tmp_path / "cells_labels.npy", labels)  # same stem: both would give cells_labels.tif
    argv = ["refine", "--op", "opening", "--quiet", "--overwrite", str(tmp_path), str(tmp_path)]
    assert main(argv) == 1
    assert "several inputs would write the same output" in capsys.readouterr().err
    (tmp_path / "cells_labels.npy").unlink()
    assert main([*argv[:-3], str(tmp_path), str(tmp_path)]) == 1  # without --overwrite
    assert "already exist" in capsys.readouterr().err
    assert main(argv) == 0
    np.testing.assert_array_equal(tifffile.imread(path), refine.opening(labels, 1))


def test_a_folder_s_output_named_as_a_file_is_refused_not_made_a_folder(
    labels_file, tmp_path, capsys
):
    """A folder INPUT refined into "refined.tif" made a folder of that name."""
    folder = labels_file[0].parent
    argv = ["refine", "--op", "opening", "--quiet", str(folder), str(tmp_path / "refined.tif")]
    assert main(argv) == 1
    assert "OUTPUT refined.tif ends as a .tif file does, but it names the folder" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "refined.tif").exists()
    assert main([*argv[:-1], str(tmp_path / "refined")]) == 0
    assert (tmp_path / "refined" / labels_file[0].name).is_file()
    # an existing file as a folder's OUTPUT: refused by the same rule as predict's --output
    (tmp_path / "notes.txt").write_text("mine")
    assert main([*argv[:-1], str(tmp_path / "notes.txt")]) == 1
    assert f"OUTPUT {tmp_path / 'notes.txt'} is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _movie(tmp_path, axes):
    """A blob that stays put over 3 frames, in a TIFF naming ``axes``."""
    movie = np.zeros((3, 20, 20), np.uint8)
    movie[:, 5:12, 5:12] = 1
    path = tmp_path / "movie_labels.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": axes})
    return path


@pytest.mark.parametrize(
    ("axes", "flags", "ids"),
    [
        ("TYX", [], [1, 2, 3]),  # a time-lapse: each frame apart (an object per frame)
        ("TYX", ["--no-per-slice"], [1, 1, 1]),  # one volume: one object through time
        ("ZYX", [], [1, 1, 1]),  # a z-stack: one object in 3D
    ],
)
def test_a_time_lapse_is_refined_frame_by_frame(tmp_path, capsys, axes, flags, ids):
    path = _movie(tmp_path, axes)
    out = tmp_path / "objects.tif"
    argv = ["refine", "--op", "connected_components", "--quiet", *flags, str(path), str(out)]
    assert main([*argv]) == 0
    objects = tifffile.imread(out)
    assert [int(objects[t].max()) for t in range(3)] == ids
    per_frame = axes == "TYX" and not flags
    assert ("each frame apart" in capsys.readouterr().err) == per_frame
    with tifffile.TiffFile(out) as tif:  # the frames stay frames
        assert tif.series[0].axes == axes


def test_a_time_lapse_of_volumes_is_refined_volume_by_volume(tmp_path, capsys):
    movie = np.zeros((2, 4, 20, 20), np.uint8)
    movie[:, 1:3, 5:12, 5:12] = 1  # one object per frame, over two planes
    path = tmp_path / "movie_labels.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TZYX"})
    out = tmp_path / "objects.tif"
    argv = ["refine", "--op", "connected_components", "--quiet"]
    assert main([*argv, str(path), str(out)]) == 0
    objects = tifffile.imread(out)
    assert [np.unique(objects[t]).tolist() for t in range(2)] == [[0, 1], [0, 2]]  # 3D each
    with tifffile.TiffFile(out) as tif:
        assert (tif.series[0].axes, tif.series[0].dtype) == ("TZYX", np.uint8)
    assert main([*argv, "--no-per-slice", str(path), str(tmp_path / "whole.tif")]) == 1
    assert "plane by plane along two (--axis 0,1)" in capsys.readouterr().err
    # --axis 0,1: each plane apart (a 2D model's prediction), ids unique in the stack
    planes = tmp_path / "planes.tif"
    assert main([*argv, "--axis", "0,1", str(path), str(planes)]) == 0
    objects = tifffile.imread(planes)
    maxima = [int(objects[t, z].max()) for t in range(2) for z in range(4)]
    assert maxima == [0, 1, 2, 0, 0, 3, 4, 0]
    with tifffile.TiffFile(planes) as tif:
        assert tif.series[0].axes == "TZYX"
    with pytest.raises(SystemExit):
        main([*argv, "--axis", "0,x", str(path), str(planes)])
    assert "expected integers separated by commas" in capsys.readouterr().err


def test_an_axis_alone_refines_plane_by_plane_along_it(labels_file, tmp_path, capsys):
    path, labels = labels_file
    argv = ["refine", "--op", "opening", "--radius", "1", "--quiet"]
    assert main([*argv, "--axis", "1", str(path), str(tmp_path / "a.npy")]) == 0
    expected = np.stack([refine.opening(labels[:, i], 1) for i in range(labels.shape[1])], 1)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), expected)  # it was ignored
    assert main([*argv, "--axis", "1", "--no-per-slice", str(path), str(tmp_path / "b.npy")]) == 1
    assert "drop --no-per-slice" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["npy", "ome-zarr"])
def test_a_time_lapse_of_stacks_keeps_its_four_axes(tmp_path, source):
    """4D labels from a NumPy file (--axis 0,1) or an OME-Zarr image naming (t, z, y, x)
    (its axes, no --axis) are refined plane by plane and written as a 4D TIFF: the
    TIFF read back as 6 pages of a 3D stack, and the OME-Zarr was refused as 4D."""
    labels = np.zeros((2, 3, 48, 48), np.uint8)
    labels[..., 10:30, 10:30] = 1
    labels[0, 1, 40, 40] = 2  # a speck
    if source == "npy":
        path, extra = tmp_path / "lab.npy", ["--axis", "0,1"]
        np.save(path, labels)
    else:
        zarr = pytest.importorskip("zarr")
        pytest.importorskip("ome_zarr")
        from ome_zarr.format import FormatV04
        from ome_zarr.writer import write_image

        path, extra = tmp_path / "lab.ome.zarr", []
        write_image(labels, zarr.open_group(str(path), mode="w", zarr_format=2), axes="tzyx",
                    fmt=FormatV04())  # fmt: skip
    out = tmp_path / "out.tif"
    argv = ["refine", "--op", "remove_small_objects", "--min-size", "4", "--quiet", *extra]
    assert main([*argv, str(path), str(out)]) == 0
    refined = tifffile.imread(out)
    assert refined.shape == labels.shape
    expected = labels.copy()
    expected[0, 1, 40, 40] = 0
    np.testing.assert_array_equal(refined, expected)


def test_a_class_the_file_lacks_is_warned_of(labels_file, tmp_path, capsys):
    """``--classes 5`` on a file of ids 0 to 2 wrote the file unchanged and said only
    "0 pixels changed": the warning names the class and the ids the file holds."""
    path, labels = labels_file
    out = tmp_path / "out.tif"
    assert main(["refine", "--op", "keep_largest", "--classes", "5", "--quiet", str(path),
                 str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "napari-seg refine: warning: cells_labels.tif: keep_largest: classes [5] not in " in err
    assert f"(they hold {np.unique(labels).tolist()})" in err
    np.testing.assert_array_equal(tifffile.imread(out), labels)
