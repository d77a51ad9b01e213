"""A TIFF's pixel size: read from ImageJ and OME-TIFF files, used by the command line,
and written with the labels."""

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_seg._calibration import Calibration, read_calibration, read_header
from napari_seg._headers import read_source_transform
from napari_seg._io_write import write_labels, write_probabilities
from napari_seg.cli import main
from napari_seg.inference import predict
from napari_seg.models import ModelSpec, create_model, load_model, save_model
from napari_seg.sample_data import cells_3d


def imagej(path, array, axes, xy, z=None, unit="micron"):
    metadata = {"axes": axes, "unit": unit}
    if z is not None:
        metadata["spacing"] = z
    tifffile.imwrite(path, array, imagej=True, resolution=(1 / xy, 1 / xy), metadata=metadata)
    return path


@pytest.mark.parametrize("unit", ["micron", "um", "\\u00B5m", "micrometer"])
def test_an_imagej_hyperstack_gives_its_pixel_size_per_array_axis(tmp_path, unit):
    # T of 1 is squeezed away, as in the array napari-seg reads
    path = imagej(tmp_path / "a.tif", np.zeros((1, 4, 2, 6, 7), np.uint16), "TZCYX", 0.3, 2.0, unit)
    calibration = read_calibration(path)
    assert calibration == Calibration("ZCYX", (2.0, 1.0, 0.3, 0.3), "micrometer")
    assert tifffile.memmap(path).shape == (4, 2, 6, 7)  # the axes napari-seg reads
    scale, translation, units = read_source_transform(path)
    assert scale == (2.0, 1.0, 0.3, 0.3)
    assert translation == (0.0,) * 4
    assert units == ("micrometer", None, "micrometer", "micrometer")
    assert calibration.without(1) == Calibration("ZYX", (2.0, 0.3, 0.3), "micrometer")
    header = read_header(path)  # the shape of the array read, for a layer to compare
    assert (header.axes, header.shape) == ("ZCYX", (4, 2, 6, 7))
    assert header.without(1).shape == (4, 6, 7)


def test_an_imagej_stack_without_spacing_has_imagej_default_depth(tmp_path):
    path = imagej(tmp_path / "a.tif", np.zeros((3, 6, 7), np.uint8), "ZYX", 0.5, unit="nm")
    assert read_calibration(path) == Calibration("ZYX", (1.0, 0.5, 0.5), "nanometer")


def test_a_plain_imagej_stack_is_slices_with_the_spacing(tmp_path):
    """Without hyperstack counts tifffile names the stack axis I; ImageJ calls it slices."""
    desc = "ImageJ=1.54f\nimages=5\nunit=micron\nspacing=2.5\nloop=false\n"
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 6, 7), np.uint8), description=desc,
                     resolution=(2.5, 2.5), metadata=None)  # fmt: skip
    assert read_calibration(path) == Calibration("ZYX", (2.5, 0.4, 0.4), "micrometer")


def test_an_ome_tiff_gives_its_physical_sizes_in_one_unit(tmp_path):
    path = tmp_path / "a.ome.tif"
    metadata = {"axes": "CZYX", "PhysicalSizeX": 300, "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 300, "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 1.5}  # fmt: skip
    tifffile.imwrite(path, np.zeros((2, 5, 6, 7), np.uint16), ome=True, metadata=metadata)
    # Z has OME's default unit, micrometres: 1500 nm
    assert read_calibration(path) == Calibration("CZYX", (1.0, 1500.0, 300.0, 300.0), "nanometer")


def uncalibrated_files(tmp_path):
    image = np.zeros((3, 6, 7), np.uint8)
    tifffile.imwrite(tmp_path / "plain.tif", image)
    # an image editor's print resolution is no pixel size
    tifffile.imwrite(tmp_path / "dpi.tif", image[0], resolution=(72, 72), resolutionunit="INCH")
    tifffile.imwrite(tmp_path / "ij.tif", image, imagej=True)  # ImageJ's uncalibrated image
    imagej(tmp_path / "pixel.tif", image, "ZYX", 0.5, unit="pixel")
    imagej(tmp_path / "bad_spacing.tif", image, "ZYX", 0.5, z="abc")
    imagej(tmp_path / "nan_spacing.tif", image, "ZYX", 0.5, z=float("nan"))
    imagej(tmp_path / "zero_spacing.tif", image, "ZYX", 0.5, z=0.0)
    tifffile.imwrite(tmp_path / "bad.ome.tif", image, ome=True, metadata={"axes": "ZYX"})
    no_z = {"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3}
    tifffile.imwrite(tmp_path / "no_z.ome.tif", image, ome=True, metadata=no_z)
    return sorted(tmp_path.glob("*.tif"))


def test_other_tiffs_and_broken_calibrations_read_as_uncalibrated(tmp_path):
    files = uncalibrated_files(tmp_path)
    assert len(files) == 9
    for path in files:
        assert read_calibration(path) is None, path.name
        assert read_source_transform(path) is None, path.name


def test_labels_keep_the_calibration_and_the_class_names(tmp_path):
    calibration = Calibration("ZYX", (2.0, 0.3, 0.3), "micrometer")
    labels = np.random.default_rng(0).integers(0, 3, (4, 6, 7)).astype(np.uint8)
    meta = {"classes": ["background", "cell"], "model": "unet"}
    write_labels(tmp_path / "l.tif", labels, metadata=meta, calibration=calibration)
    assert read_calibration(tmp_path / "l.tif") == calibration
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        properties = tif.imagej_metadata["Properties"]
        np.testing.assert_array_equal(tif.asarray(), labels)
    assert json.loads(properties["classes"]) == meta["classes"]
    assert properties["model"] == "unet"
    # a unit ImageJ has no name for is written in micrometres
    angstrom = Calibration("ZYX", (2e4, 3e3, 3e3), "angstrom")
    write_labels(tmp_path / "a.tif", labels, calibration=angstrom)
    assert read_calibration(tmp_path / "a.tif") == calibration


@pytest.mark.parametrize(
    ("dtype", "axes"), [(np.int32, "ZYX"), (np.uint8, "YXZ"), (np.uint8, "QYX")]
)
def test_labels_imagej_cannot_hold_are_written_uncalibrated_with_their_metadata(
    tmp_path, dtype, axes
):
    labels = np.ones((4, 6, 7), dtype)
    labels[0, 0, 0] = 70000 if dtype == np.int32 else 2  # int32 ids over uint16's
    meta = {"classes": ["a", "b"]}
    write_labels(tmp_path / "l.tif", labels, metadata=meta,
                 calibration=Calibration(axes, (2.0, 0.3, 0.3), "micrometer"))  # fmt: skip
    assert read_calibration(tmp_path / "l.tif") is None
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.shaped_metadata[0]["classes"] == ["a", "b"]
        assert tif.asarray().dtype == dtype
        assert tif.series[0].axes == axes  # the axis names are kept all the same


def test_probabilities_of_a_time_lapse_have_the_classes_as_channels(tmp_path):
    probs = np.random.default_rng(0).random((3, 4, 6, 7)).astype(np.float32)
    calibration = Calibration("TYX", (1.0, 0.3, 0.3), "micrometer")
    write_probabilities(tmp_path / "p.tif", probs, calibration=calibration)
    assert read_calibration(tmp_path / "p.tif") == Calibration(
        "TCYX", (1.0, 1.0, 0.3, 0.3), "micrometer"
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), probs.swapaxes(0, 1))
    write_probabilities(tmp_path / "q.tif", probs, axes="TYX")  # uncalibrated
    with tifffile.TiffFile(tmp_path / "q.tif") as tif:
        assert tif.series[0].axes == "TCYX"


def test_probabilities_keep_the_calibration(tmp_path):
    calibration = Calibration("ZYX", (2.0, 0.3, 0.3), "micrometer")
    probs = np.random.default_rng(0).random((3, 4, 6, 7)).astype(np.float32)
    names = ("a", "b", "c")
    write_probabilities(tmp_path / "p.tif", probs, class_names=names, calibration=calibration)
    assert read_calibration(tmp_path / "p.tif") == Calibration(
        "ZCYX", (2.0, 1.0, 0.3, 0.3), "micrometer"
    )


@pytest.fixture(scope="module")
def model_3d(tmp_path_factory):
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet", 1, 3, spatial_dims=3, options={"depth": 2, "base_width": 4},
        spacing=(1.5, 0.6, 0.6),
    )  # fmt: skip
    path = tmp_path_factory.mktemp("model") / "m3d.safetensors"
    save_model(create_model(spec), path)
    return path


def test_predict_resamples_a_calibrated_tiff_and_calibrates_its_labels(tmp_path, model_3d):
    image, _ = cells_3d((8, 40, 48), seed=4)
    source = imagej(tmp_path / "stack.tif", image, "ZYX", 0.3, 3.0)
    args = ["predict", "--model", str(model_3d), "--output", str(tmp_path / "out"),
            "--precision", "fp32", "--probabilities", "--quiet", str(source)]  # fmt: skip
    assert main(args) == 0
    model = load_model(model_3d)
    expected = predict(model, image, spacing=(3.0, 0.3, 0.3), precision="fp32").labels
    plain = predict(model, image, precision="fp32").labels
    assert not np.array_equal(expected, plain)  # the spacing matters to this model
    out = tmp_path / "out" / "stack_labels.tif"
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    assert read_calibration(out) == Calibration("ZYX", (3.0, 0.3, 0.3), "micrometer")
    probabilities = tmp_path / "out" / "stack_probabilities.tif"
    assert read_calibration(probabilities).scale == (3.0, 1.0, 0.3, 0.3)
    # refining the labels keeps their pixel size
    refined = tmp_path / "refined.tif"
    assert main(["refine", "--op", "fill_holes", "--quiet", str(out), str(refined)]) == 0
    assert read_calibration(refined) == Calibration("ZYX", (3.0, 0.3, 0.3), "micrometer")


def test_evaluate_measures_surfaces_in_the_tiff_unit(tmp_path, capsys):
    _, labels = cells_3d((8, 40, 48), seed=4)
    labels = labels.astype(np.uint8)
    imagej(tmp_path / "gt.tif", labels, "ZYX", 0.3, 3.0)
    shifted = np.roll(labels, 2, axis=2)
    tifffile.imwrite(tmp_path / "pred.tif", shifted)
    args = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "--surface", "--json"]  # fmt: skip
    assert main(args) == 0
    surface = json.loads(capsys.readouterr().out)["surface"]
    assert surface["spacing"] == [3.0, 0.3, 0.3]
    assert surface["unit"] == "µm"


def test_evaluate_takes_the_prediction_s_calibration_when_the_truth_has_none(tmp_path, capsys):
    _, labels = cells_3d((8, 40, 48), seed=4)
    labels = labels.astype(np.uint8)
    tifffile.imwrite(tmp_path / "gt.tif", labels)  # hand-made, uncalibrated
    imagej(tmp_path / "pred.tif", np.roll(labels, 2, axis=2), "ZYX", 0.3, 3.0)
    args = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"),
            "--surface", "--json"]  # fmt: skip
    assert main(args) == 0
    surface = json.loads(capsys.readouterr().out)["surface"]
    assert surface["spacing"] == [3.0, 0.3, 0.3]
    # the truth's calibration wins where both have one
    imagej(tmp_path / "gt.tif", labels, "ZYX", 0.5, 2.0)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["surface"]["spacing"] == [2.0, 0.5, 0.5]


def test_predict_takes_the_channels_from_the_tiff_s_c_axis(tmp_path):
    """Two timepoints of two channels (TCYX): the first axis of size 2 is the time,
    which the size rule alone would take for the channels."""
    torch.manual_seed(0)
    spec = ModelSpec("unet", 2, 3, options={"depth": 2, "base_width": 4})
    model = create_model(spec)
    with torch.no_grad():  # an untrained net answers one class everywhere: make it vary
        for p in model.parameters():
            p.normal_(0, 0.5)
    save_model(model, tmp_path / "m.safetensors")
    image = np.random.default_rng(0).random((2, 2, 48, 64)).astype(np.float32)
    image[:, 1] = image[:, 1, ::-1]  # the channels differ from the timepoints
    tifffile.imwrite(tmp_path / "tcyx.tif", image, imagej=True, metadata={"axes": "TCYX"})
    args = ["predict", "--model", str(tmp_path / "m.safetensors"), "--output",
            str(tmp_path / "out"), "--precision", "fp32", "--quiet", "--axis", "0",
            str(tmp_path / "tcyx.tif")]  # fmt: skip
    assert main(args) == 0
    got = tifffile.imread(tmp_path / "out" / "tcyx_labels.tif")
    model = load_model(tmp_path / "m.safetensors")
    right = predict(model, image, channel_axis=1, axis=0, precision="fp32").labels
    wrong = predict(model, image, channel_axis=0, axis=1, precision="fp32").labels
    assert not np.array_equal(right, wrong)
    np.testing.assert_array_equal(got, right)


@pytest.mark.parametrize(
    ("values", "dtype"),
    [((0, 7), np.uint8), ((0, 40000), np.uint16), ((0, 70000), np.int32), ((-1, 3), np.int32)],
)
def test_label_ids_are_stored_in_the_smallest_type_imagej_holds(tmp_path, values, dtype):
    """int32 objects with ids up to 65535 become a uint8/uint16 hyperstack with their
    axes (Fiji opens it as frames); larger or negative ids keep their type."""
    labels = np.zeros((3, 6, 7), np.int32)
    labels[0, 0, :2] = values
    write_labels(tmp_path / "o.tif", labels, axes="TYX")
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:
        assert tif.series[0].dtype == dtype
        assert tif.series[0].axes == "TYX"
        assert tif.is_imagej == (dtype != np.int32)
        np.testing.assert_array_equal(tif.asarray(), labels)
