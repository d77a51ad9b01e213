"""napari opens NIfTI files and DICOM folders through napari-seg and saves Labels as NIfTI."""

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

pytestmark = pytest.mark.gui

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._layers import GEOMETRY_KEY  # noqa: E402
from napari_seg._widgets import segment_widget  # noqa: E402
from napari_seg.medical import read_nifti  # noqa: E402
from napari_seg.models import ModelSpec, create_model  # noqa: E402
from napari_seg.sample_data import cells_3d  # noqa: E402

AFFINE = np.array([[0.9, 0, 0, -40], [0, 0.8, 0, -30], [0, 0, 3.0, -12], [0, 0, 0, 1.0]])
#: A small random 2D U-Net (1 channel, 3 classes) for the Segment dock.
TINY_UNET = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                      options={"depth": 2, "base_width": 4})  # fmt: skip


def _segment_stack(viewer, qtbot, layer):
    """Segment ``layer``'s whole stack with :data:`TINY_UNET` in the Segment dock; the
    Labels layer it adds."""
    w = segment_widget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    torch.manual_seed(0)
    w.current.set(create_model(TINY_UNET).eval(), path=None, dirty=True)
    w._precision.value = "fp32"
    w.reset_choices()
    w._image.value = layer
    w._scope.value = "stack"
    w.run()
    qtbot.waitUntil(lambda: w._worker is None, timeout=120_000)
    return next(x for x in viewer.layers if isinstance(x, napari.layers.Labels))


def test_open_segment_and_save_nifti(make_napari_viewer_proxy, qtbot, tmp_path):
    image, _ = cells_3d((5, 40, 48), seed=2)
    stored = np.ascontiguousarray(image.transpose(2, 1, 0))  # an RAS file (x, y, z)
    nib.save(nib.Nifti1Image(stored, AFFINE), str(tmp_path / "brain.nii.gz"))
    viewer = make_napari_viewer_proxy()
    [layer] = viewer.open(tmp_path / "brain.nii.gz", plugin="napari-seg")
    assert isinstance(layer, napari.layers.Image)
    assert layer.name == "brain"
    expected, geometry = read_nifti(tmp_path / "brain.nii.gz")
    np.testing.assert_array_equal(layer.data, expected)
    np.testing.assert_allclose(layer.scale, (3.0, 0.8, 0.9))
    np.testing.assert_allclose(layer.translate, geometry.origin)
    np.testing.assert_allclose(layer.metadata[GEOMETRY_KEY]["affine"], AFFINE, rtol=1e-6)
    units = hasattr(layer, "units")  # napari >= 0.6
    if units:  # the scale bar and the cursor's position read millimetres
        assert [str(u) for u in layer.units] == ["millimeter"] * 3

    labels = _segment_stack(viewer, qtbot, layer)
    np.testing.assert_allclose(labels.scale, layer.scale)
    assert labels.metadata[GEOMETRY_KEY] == layer.metadata[GEOMETRY_KEY]
    if units:
        assert [str(u) for u in labels.units] == ["millimeter"] * 3

    [written] = labels.save(str(tmp_path / "brain_labels.nii.gz"), plugin="napari-seg")
    out = nib.load(written)
    assert out.shape == stored.shape
    np.testing.assert_allclose(out.affine, AFFINE)
    np.testing.assert_array_equal(read_nifti(written)[0], labels.data)

    [reopened] = viewer.open(written, plugin="napari-seg")
    assert isinstance(reopened, napari.layers.Labels)  # *_labels with integer voxels
    np.testing.assert_allclose(reopened.translate, layer.translate)

    # A file in micrometres (a microscope's stack) opens in micrometres.
    micro = nib.Nifti1Image(stored, AFFINE)
    micro.header.set_xyzt_units("micron")
    nib.save(micro, str(tmp_path / "stack.nii.gz"))
    [stack] = viewer.open(tmp_path / "stack.nii.gz", plugin="napari-seg")
    np.testing.assert_allclose(stack.scale, (3.0, 0.8, 0.9))
    if units:
        assert [str(u) for u in stack.units] == ["micrometer"] * 3


def test_a_folder_of_several_series_opens_a_layer_per_series(
    make_napari_viewer_proxy, tmp_path, dicom_series
):
    """A study exported into one folder (a T1 and a T2 on other grids, and a series
    with a missing slice): File > Open Folder refused it all ('holds 3 DICOM series
    ...; choose one') with no way to choose in napari. Each series that forms a
    volume is now a layer on its own grid; the other is named in a warning."""
    rng = np.random.default_rng(0)
    t1 = rng.integers(0, 500, (4, 16, 20)).astype(np.int16)
    t2 = rng.integers(0, 500, (3, 8, 10)).astype(np.int16)
    dicom_series(tmp_path / "study", t1, spacing=(2.0, 0.5, 0.6), description="T1")
    dicom_series(tmp_path / "study", t2, spacing=(3.0, 1.0, 1.2), description="T2",
                 names=[f"T2_{k}.dcm" for k in range(3)])  # fmt: skip
    dicom_series(tmp_path / "study", t1, description="broken",
                 names=[f"B_{k}.dcm" for k in range(4)])  # fmt: skip
    (tmp_path / "study" / "B_1.dcm").unlink()  # a missing slice: uneven steps
    viewer = make_napari_viewer_proxy()
    with pytest.warns(UserWarning, match=r"left out series broken .*not evenly spaced"):
        layers = viewer.open(tmp_path / "study", plugin="napari-seg")
    assert [layer.name for layer in layers] == ["study T1", "study T2"]
    np.testing.assert_array_equal(layers[0].data, t1 - 1024.0)  # the CT's rescale
    np.testing.assert_array_equal(layers[1].data, t2 - 1024.0)
    np.testing.assert_allclose(layers[0].scale, (2.0, 0.5, 0.6))
    np.testing.assert_allclose(layers[1].scale, (3.0, 1.0, 1.2))


def test_dicom_files_open_their_series_once(
    make_napari_viewer_proxy, tmp_path, dicom_series, monkeypatch
):
    """Files of a DICOM series (File > Open Files, or drag and drop) open their series
    as one layer, once for all of them as napari asks for each file: a file of each
    of two series gives two layers. Opened again later, a series reads again. napari
    gave each file as a 2D image of its own slice."""
    from napari_seg import _napari_io

    rng = np.random.default_rng(0)
    t1 = rng.integers(0, 500, (4, 16, 20)).astype(np.int16)
    t2 = rng.integers(0, 500, (3, 8, 10)).astype(np.int16)
    dicom_series(tmp_path / "study", t1, spacing=(2.0, 0.5, 0.6), description="T1",
                 names=[f"A{k}.dcm" for k in range(4)])  # fmt: skip
    dicom_series(tmp_path / "study", t2, spacing=(3.0, 1.0, 1.2), description="T2",
                 names=[f"B{k}.dcm" for k in range(3)])  # fmt: skip
    monkeypatch.setattr(_napari_io, "_opened", {})
    viewer = make_napari_viewer_proxy()
    files = sorted((tmp_path / "study").iterdir())
    layers = viewer.open(files, plugin="napari-seg")
    assert [layer.name for layer in layers] == ["study T1", "study T2"]
    np.testing.assert_array_equal(layers[1].data, t2 - 1024.0)
    np.testing.assert_allclose(layers[1].scale, (3.0, 1.0, 1.2))
    assert viewer.open(files[1], plugin="napari-seg") == []  # within the same moment
    monkeypatch.setattr(_napari_io, "SERIES_OPENED_S", 0.0)
    [again] = viewer.open(files[1], plugin="napari-seg")
    assert again.name == "study T1 [1]"  # napari's name for a second layer of a name
    [stacked] = viewer.open(files[4:], plugin="napari-seg", stack=True)
    assert stacked.name == "study T2 [1]"


def test_a_study_folder_opens_the_series_in_its_subfolders(
    make_napari_viewer_proxy, tmp_path, dicom_series
):
    """File > Open Folder on a study whose series are in folders of their own (as PACS
    and CD exports write them): napari found no reader for it. Each series is a layer."""
    rng = np.random.default_rng(1)
    t1 = rng.integers(0, 500, (4, 16, 20)).astype(np.int16)
    t2 = rng.integers(0, 500, (3, 8, 10)).astype(np.int16)
    dicom_series(tmp_path / "study" / "SE1", t1, spacing=(2.0, 0.5, 0.6), description="T1")
    dicom_series(tmp_path / "study" / "SE2", t2, spacing=(3.0, 1.0, 1.2), description="T2")
    uid = None  # a two-echo series: each position twice, told apart by EchoNumbers
    for echo in (1, 2):
        names = [f"E{echo}_{k}.dcm" for k in range(3)]
        uid = dicom_series(tmp_path / "study" / "SE3", t2 + echo, description="ME",
                           series_uid=uid, names=names)  # fmt: skip
        for path in (tmp_path / "study" / "SE3").glob(f"E{echo}_*.dcm"):
            ds = pydicom.dcmread(path)
            ds.EchoNumbers = echo
            ds.save_as(path)
    viewer = make_napari_viewer_proxy()
    layers = viewer.open(tmp_path / "study", plugin="napari-seg")
    # by SeriesNumber (none here), then description
    assert [layer.name for layer in layers] == [
        "study ME [0]", "study ME [1]", "study T1", "study T2"
    ]  # fmt: skip
    np.testing.assert_array_equal(layers[1].data, t2 + 2 - 1024.0)
    np.testing.assert_array_equal(layers[3].data, t2 - 1024.0)
    np.testing.assert_allclose(layers[3].scale, (3.0, 1.0, 1.2))


def test_open_a_dicom_folder_and_save_a_plain_labels_layer(
    make_napari_viewer_proxy, tmp_path, dicom_series
):
    volume = np.random.default_rng(0).integers(0, 500, (4, 16, 20)).astype(np.int16)
    dicom_series(tmp_path / "ct", volume, spacing=(2.0, 0.5, 0.6), origin=(-10.0, -20.0, 5.0))
    viewer = make_napari_viewer_proxy()
    [layer] = viewer.open(tmp_path / "ct", plugin="napari-seg")
    assert layer.data.shape == (4, 16, 20)
    np.testing.assert_allclose(layer.scale, (2.0, 0.5, 0.6))
    np.testing.assert_allclose(layer.translate, (5.0, -20.0, -10.0))
    if hasattr(layer, "units"):  # napari >= 0.6; DICOM positions are in millimetres
        assert [str(u) for u in layer.units] == ["millimeter"] * 3
    # A Labels layer drawn by hand (no recorded geometry) is saved from its scale/translate.
    drawn = viewer.add_labels(
        np.zeros((4, 16, 20), np.uint8), scale=layer.scale, translate=layer.translate
    )
    drawn.data[1, 2:5, 3:7] = 2
    [written] = drawn.save(str(tmp_path / "drawn.nii.gz"), plugin="napari-seg")
    array, geometry = read_nifti(written)
    np.testing.assert_array_equal(array, drawn.data)
    np.testing.assert_allclose(geometry.spacing, layer.scale)
    np.testing.assert_allclose(geometry.origin, layer.translate)
    assert geometry.unit == "millimeter"  # napari's "pixel" units: taken as mm
    # A layer whose napari units are lengths keeps them (nm in micrometres: NIfTI has no nm).
    if not hasattr(drawn, "units"):
        return  # napari < 0.6 has no layer units
    drawn.units = ("nanometer",) * 3
    [written] = drawn.save(str(tmp_path / "drawn_nm.nii.gz"), plugin="napari-seg")
    assert nib.load(written).header.get_xyzt_units()[0] == "micron"
    _, geometry = read_nifti(written)
    np.testing.assert_allclose(geometry.spacing, np.multiply(layer.scale, 1e-3))


def test_other_files_open_without_asking_which_reader(make_napari_viewer, tmp_path, monkeypatch):
    """napari-seg reads NIfTI files and DICOM folders only: a TIFF opened from the
    File menu goes to napari's reader at once, with no Choose-reader dialog (the
    manifest once claimed every file name, so napari asked for each TIFF and PNG)."""
    import napari._qt.qt_viewer as qt_viewer
    import tifffile
    from napari.plugins import _npe2

    viewer = make_napari_viewer()
    tifffile.imwrite(tmp_path / "cells.tif", np.zeros((8, 8), np.uint8))
    for name in ("cells.tif", "cells.png", "cells.npy", "stack.ome.tif"):
        assert "napari-seg" not in _npe2.get_readers(str(tmp_path / name)), name
    for name in ("brain.nii", "brain.nii.gz", "BRAIN.NII.GZ", "IM0001.dcm"):
        assert "napari-seg" in _npe2.get_readers(str(tmp_path / name)), name
    assert "napari-seg" in _npe2.get_readers(str(tmp_path))  # a DICOM folder
    asked = []
    monkeypatch.setattr(qt_viewer, "handle_gui_reading", lambda paths, *a, **k: asked.append(paths))
    viewer.window._qt_viewer._qt_open([str(tmp_path / "cells.tif")], stack=False)
    assert asked == []
    assert [layer.name for layer in viewer.layers] == ["cells"]


@pytest.mark.parametrize("degrees", [20.0, 70.0])
def test_a_turned_labels_layer_is_saved_where_napari_shows_it(make_napari_viewer_proxy, tmp_path,
                                                              degrees):  # fmt: skip
    """A layer turned in napari (rotate, shear, the transform tool's affine) is saved with
    that turn: every voxel lies in the file where napari shows it (70 degrees brings y
    nearer x than its own axis, so the file's axes are not the layer's nearest LPS)."""
    viewer = make_napari_viewer_proxy()
    a = np.radians(degrees)
    turn = np.eye(4)
    turn[1:3, 1:3] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    turn[:3, 3] = (4.0, -7.0, 2.0)
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    layer = viewer.add_labels(data, scale=(2.0, 0.5, 0.8), translate=(1.0, 2.0, -3.0),
                              shear=[0.1, 0.0, 0.2], affine=turn)  # fmt: skip
    [written] = layer.save(str(tmp_path / "turned.nii.gz"), plugin="napari-seg")
    image = nib.load(written)
    stored = np.asarray(image.dataobj)
    for value in (0, 17, 42, 59):
        (index,) = np.argwhere(data == value)
        (voxel,) = np.argwhere(stored == value)
        ras = image.affine @ (*voxel, 1.0)
        lps_zyx = (ras[2], -ras[1], -ras[0])
        np.testing.assert_allclose(lps_zyx, layer.data_to_world(index), atol=1e-9)


def test_save_layers_writes_nrrd_and_metaimage_on_the_source_grid(make_napari_viewer_proxy,
                                                                   tmp_path):  # fmt: skip
    """File > Save Layers with a .nrrd or .mha name (or the writer picked without a
    suffix) writes the labels of a NIfTI volume on its grid, as pynrrd and ITK read
    them; the layer's own scale for a layer read from no medical file."""
    import nrrd
    import SimpleITK as sitk

    image, labels = cells_3d((5, 40, 48), seed=2)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(image.T), AFFINE), str(tmp_path / "b.nii.gz"))
    viewer = make_napari_viewer_proxy()
    [layer] = viewer.open(tmp_path / "b.nii.gz", plugin="napari-seg")
    drawn = viewer.add_labels(labels.astype(np.uint8), scale=layer.scale,
                              translate=layer.translate, metadata=dict(layer.metadata))  # fmt: skip
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ AFFINE
    stored = read_nifti(tmp_path / "b.nii.gz")[1].to_file(labels)  # the NIfTI's (i, j, k)
    [written] = drawn.save(str(tmp_path / "b_labels.nrrd"), plugin="napari-seg")
    data, header = nrrd.read(written)
    np.testing.assert_array_equal(data, stored)
    np.testing.assert_allclose(header["space directions"], lps[:3, :3].T)
    np.testing.assert_allclose(header["space origin"], lps[:3, 3])
    [written] = drawn.save(str(tmp_path / "b_labels.mha"), plugin="napari-seg")
    out = sitk.ReadImage(written)
    np.testing.assert_allclose(out.GetSpacing(), (0.9, 0.8, 3.0))
    np.testing.assert_allclose(out.GetOrigin(), lps[:3, 3])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), stored.T)
    plain = viewer.add_labels(labels.astype(np.uint8), scale=(2.0, 0.5, 0.5))
    from napari_seg._napari_write import write_nrrd_labels

    [written] = write_nrrd_labels(str(tmp_path / "plain"), plain.data, {"scale": plain.scale})
    assert written.endswith("plain.nrrd")
    data, header = nrrd.read(written)
    assert "Segment0_Name" not in header  # the layer names no classes
    np.testing.assert_allclose(np.abs(header["space directions"]), np.diag([0.5, 0.5, 2.0]))


def test_saved_nrrd_labels_keep_the_layers_class_names_and_colours(make_napari_viewer_proxy,
                                                                    tmp_path):  # fmt: skip
    """A Labels layer naming its classes (as Segment and the readers make them) saved as
    .nrrd opens in 3D Slicer as a segmentation of those names and colours (slicerio,
    Slicer's reader, is the oracle) and opens again in napari with the same names; the
    background is no segment."""
    import slicerio

    from napari_seg._layers import labels_layer_kwargs

    _, labels = cells_3d((5, 40, 48), seed=2)
    viewer = make_napari_viewer_proxy()
    colors = [(0, 0, 0, 0), (0.9, 0.2, 0.1, 1.0), (0.1, 0.3, 0.8, 1.0)]
    kwargs = labels_layer_kwargs("cells", ["background", "cell", "nucleus"], colors, 0)
    layer = viewer.add_labels(labels.astype(np.uint8), scale=(3.0, 0.5, 0.5), **kwargs)
    [written] = layer.save(str(tmp_path / "cells_labels.nrrd"), plugin="napari-seg")
    found = slicerio.read_segmentation(written)
    rows = [(s["name"], s["labelValue"], s["color"]) for s in found["segments"]]
    assert rows == [("cell", 1, [0.9, 0.2, 0.1]), ("nucleus", 2, [0.1, 0.3, 0.8])]
    [opened] = viewer.open(written, plugin="napari-seg")
    assert list(opened.features["class"]) == ["background", "cell", "nucleus"]
    np.testing.assert_array_equal(opened.data, labels)


def test_a_cine_series_opens_as_one_layer_segments_and_saves_as_4d_nifti(
    make_napari_viewer_proxy, qtbot, tmp_path
):
    """A 4D NIfTI of more volumes than a volume has channels (a cardiac cine MRI's
    frames) opens as one layer with a slider over its time points (it opened as a
    layer per frame, as channels), is segmented frame by frame as the command line
    segments it, and its labels save as a 4D NIfTI on the file's grid; a 4D file of
    a few volumes (multi-modal MRI) still opens as a layer per channel. The layers'
    axes are named "t", "z", "y", "x" (napari numbered them), the labels' too."""
    from napari_seg.cli import main
    from napari_seg.medical import MAX_VOLUME_CHANNELS
    from napari_seg.models import save_model

    frames = MAX_VOLUME_CHANNELS + 2
    cine = np.stack([cells_3d((4, 32, 40), seed=s)[0] for s in range(frames)], axis=-1)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(cine.T.transpose(1, 2, 3, 0)), AFFINE),
             str(tmp_path / "cine.nii.gz"))  # fmt: skip
    nib.save(nib.Nifti1Image(np.zeros((40, 32, 4, 3), np.float32), AFFINE),
             str(tmp_path / "mr.nii.gz"))  # fmt: skip
    viewer = make_napari_viewer_proxy()
    assert [x.name for x in viewer.open(tmp_path / "mr.nii.gz", plugin="napari-seg")] == [
        "mr [0]", "mr [1]", "mr [2]"]  # fmt: skip
    [layer] = viewer.open(tmp_path / "cine.nii.gz", plugin="napari-seg")
    assert layer.data.shape == (frames, 4, 32, 40)
    np.testing.assert_allclose(layer.scale[1:], viewer.layers["mr [0]"].scale)
    # the sliders are named (they read "0", "1"), and time so for the docks
    assert viewer.layers["mr [0]"].axis_labels == ("z", "y", "x")
    assert layer.axis_labels == viewer.dims.axis_labels == ("t", "z", "y", "x")
    labels = _segment_stack(viewer, qtbot, layer)
    assert labels.data.shape == layer.data.shape
    assert labels.axis_labels == layer.axis_labels  # a layer made from it keeps them
    [written] = labels.save(str(tmp_path / "cine_seg.nii.gz"), plugin="napari-seg")
    saved = nib.load(written)
    assert saved.shape == (40, 32, 4, frames)
    np.testing.assert_allclose(saved.affine, AFFINE)
    torch.manual_seed(0)
    save_model(create_model(TINY_UNET).eval(), tmp_path / "m.safetensors")
    argv = ["predict", "--model", str(tmp_path / "m.safetensors"), "--precision", "fp32",
            "--output", str(tmp_path / "out"), "--quiet",
            str(tmp_path / "cine.nii.gz")]  # fmt: skip
    assert main(argv) == 0
    expected = nib.load(tmp_path / "out" / "cine_labels.nii.gz")
    np.testing.assert_array_equal(np.asarray(saved.dataobj), np.asarray(expected.dataobj))


def _cropped_labels(tmp_path):
    """A volume ``b.nii.gz`` and labels ``b_truth_labels.nii.gz`` saved cropped to a
    window of its grid (3D Slicer's habit); the cropped labels on the volume's grid and
    the whole labels, as ``(z, y, x)`` arrays; the window's ``(z, y, x)`` slices."""
    image, labels = cells_3d((5, 40, 48), seed=2)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(image.T), AFFINE), str(tmp_path / "b.nii.gz"))
    geometry = read_nifti(tmp_path / "b.nii.gz")[1]
    stored = geometry.to_file(labels.astype(np.uint8))  # (i, j, k) as the NIfTI stores it
    window = (slice(6, 40), slice(4, 30), slice(1, 4))
    inside = np.zeros_like(stored)
    inside[window] = stored[window]
    moved = AFFINE.copy()
    moved[:3, 3] += AFFINE[:3, :3] @ [6, 4, 1]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(stored[window]), moved),
             str(tmp_path / "b_truth_labels.nii.gz"))  # fmt: skip
    mask = np.zeros_like(stored)
    mask[window] = 1
    found = np.nonzero(geometry.to_array(mask))
    under = tuple(slice(int(i.min()), int(i.max()) + 1) for i in found)  # (z, y, x)
    return geometry.to_array(inside), geometry.to_array(stored), under


def test_a_cropped_segmentation_is_scored_and_trained_on_its_images_grid(
    make_napari_viewer_proxy, qtbot, tmp_path, capture_notes
):
    """Ground truth saved cropped to its segments (3D Slicer's habit; a DICOM SEG of a
    few slices) opens where it lies but has fewer voxels than its image: Evaluate
    scores it against a prediction on the image's grid (placed on that grid, as the
    command line does) and draws the error overlay on that grid, and Train pairs it
    with the image, as it pairs an image cropped to a region of interest with the
    labels of the whole volume (those under it); both refused the pairs for their
    shapes."""
    from napari_seg._widgets import _evaluate as evaluate_module
    from napari_seg._widgets import _train as train_module
    from napari_seg._widgets import evaluate_widget, train_widget

    expected, whole_labels, _ = _cropped_labels(tmp_path)
    viewer = make_napari_viewer_proxy()
    [layer] = viewer.open(tmp_path / "b.nii.gz", plugin="napari-seg")
    [truth] = viewer.open(tmp_path / "b_truth_labels.nii.gz", plugin="napari-seg")
    assert truth.data.shape == (3, 26, 34)
    pred = viewer.add_labels(expected, name="pred", scale=layer.scale, translate=layer.translate,
                             metadata=dict(layer.metadata))  # fmt: skip

    notes = capture_notes(evaluate_module)
    w = evaluate_widget(viewer)
    viewer.window.add_dock_widget(w, name="Evaluate")
    w.reset_choices()
    w._pred.value, w._gt.value = pred, truth
    w.run()
    assert w._worker is not None, notes["error"]
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert notes["error"] == []
    assert notes["warning"] == []
    scores = w.result.scores
    assert list(scores.labels) == np.unique(expected).tolist()
    np.testing.assert_allclose(scores.iou, 1.0)
    w.show_errors()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    errors = viewer.layers["pred errors"]
    assert errors.data.shape == expected.shape
    assert set(np.unique(errors.data)) <= {0, 1}  # true positives only

    notes = capture_notes(train_module)
    t = train_widget(viewer)
    viewer.window.add_dock_widget(t, name="Train")
    t.current.set(create_model(TINY_UNET).eval(), path=None, dirty=True)
    t.reset_choices()
    t._label0.value = "background"
    t._budget_unit.value = "epochs"
    t._budget.value = 1
    t._patch.value = 32
    t._device.value = "cpu"
    # and an image cropped to a region of interest with the labels of the whole volume
    source = nib.load(tmp_path / "b.nii.gz")
    moved = AFFINE.copy()
    moved[:3, 3] += AFFINE[:3, :3] @ [6, 4, 1]
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj)[6:40, 4:30, 1:4], moved),
             str(tmp_path / "b_roi.nii.gz"))  # fmt: skip
    [roi] = viewer.open(tmp_path / "b_roi.nii.gz", plugin="napari-seg")
    whole = viewer.add_labels(whole_labels, name="whole", metadata=dict(layer.metadata))
    for image, labels in ((layer, truth), (roi, whole)):
        t._image.value, t._labels.value = image, labels
        t.start()
        assert t._worker is not None, notes["error"]
        qtbot.waitUntil(lambda: t._worker is None, timeout=180_000)
        assert notes["error"] == []
        trained = t.current.model.card["provenance"]["training"]
        assert trained["metrics"]["steps"] > 0
        t.current.set(create_model(TINY_UNET).eval(), path=None, dirty=True)


def test_a_cropped_prediction_is_scored_on_the_grid_of_its_whole_truth(
    make_napari_viewer_proxy, qtbot, tmp_path, capture_notes
):
    """A prediction covering a window of its ground truth's grid (labels of a cropped
    volume) is scored on the truth's grid, 0 around it, as the evaluate command scores
    it (the dock placed only a cropped truth on the prediction's grid, and refused this
    pair for its shape), and its error overlay lies where the truth does."""
    from napari_seg._widgets import _evaluate as evaluate_module
    from napari_seg._widgets import evaluate_widget
    from napari_seg.metrics import ERROR_NAMES

    inside, whole, _ = _cropped_labels(tmp_path)
    viewer = make_napari_viewer_proxy()
    [layer] = viewer.open(tmp_path / "b.nii.gz", plugin="napari-seg")
    truth = viewer.add_labels(whole, name="truth", scale=layer.scale, translate=layer.translate,
                              metadata=dict(layer.metadata))  # fmt: skip
    [pred] = viewer.open(tmp_path / "b_truth_labels.nii.gz", plugin="napari-seg")
    notes = capture_notes(evaluate_module)
    w = evaluate_widget(viewer)
    viewer.window.add_dock_widget(w, name="Evaluate")
    w.reset_choices()
    w._pred.value, w._gt.value = pred, truth
    for _ in range(2):  # the overlay added, then updated in place
        w.run()
        assert w._worker is not None, notes["error"]
        qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
        w.show_errors()
        qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert notes["error"] == []
    cell = list(w.result.scores.labels).index(1)
    missed = np.sum((whole == 1) & (inside != 1))
    assert missed > 0
    assert w.result.scores.iou[cell] == pytest.approx(np.sum(inside == 1) / np.sum(whole == 1))
    errors = viewer.layers[f"{pred.name} errors"]
    assert errors.data.shape == whole.shape
    np.testing.assert_allclose(errors.translate, truth.translate)
    assert np.sum(errors.data == ERROR_NAMES.index("false negative")) >= missed


def test_refine_takes_the_images_voxels_under_a_cropped_segmentation(
    make_napari_viewer_proxy, qtbot, tmp_path, capture_notes
):
    """The Refine dock's CRF of labels saved cropped to their segments reads the image's
    voxels under them (it refused the image, covering more pixels than the labels),
    and the refined labels stay where they lie; labels reaching outside the image's
    grid are refused, named, and left as they were."""
    from napari_seg import refine
    from napari_seg._widgets import _refine as refine_module
    from napari_seg._widgets import refine_widget

    inside, _, window = _cropped_labels(tmp_path)
    viewer = make_napari_viewer_proxy()
    [image] = viewer.open(tmp_path / "b.nii.gz", plugin="napari-seg")
    [labels] = viewer.open(tmp_path / "b_truth_labels.nii.gz", plugin="napari-seg")
    under = image.data[window]
    np.testing.assert_array_equal(inside[window], labels.data)
    before = labels.data.copy()
    probs = np.stack([labels.data == c for c in range(3)]).astype(np.float32) * 0.1 + 0.3
    prob_layer = viewer.add_image(probs, name="probs")
    notes = capture_notes(refine_module)
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    w.reset_choices()
    w._labels.value = labels
    w._op.value = "crf"
    w._params["iterations"].value = 2
    w._params["device"].value = "cpu"
    w._image.value, w._probabilities.value = image, prob_layer
    w._output.value = "new"
    w._scope.value = "volume"
    w.apply()
    assert w._worker is not None, notes["error"]
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert notes["error"] == []
    expected = refine.crf_refine(probs, under, iterations=2, device="cpu")
    refined = viewer.layers[-1]
    np.testing.assert_array_equal(refined.data, expected)
    np.testing.assert_allclose(refined.translate, labels.translate)
    np.testing.assert_array_equal(labels.data, before)
    cropped = nib.load(tmp_path / "b_truth_labels.nii.gz")
    far = AFFINE.copy()
    far[:3, 3] += AFFINE[:3, :3] @ [-2, 4, 1]  # two voxels before the image's first
    nib.save(nib.Nifti1Image(np.asarray(cropped.dataobj), far), str(tmp_path / "far.nii.gz"))
    [outside] = viewer.open(tmp_path / "far.nii.gz", plugin="napari-seg", layer_type="labels")
    count = len(viewer.layers)
    w.reset_choices()
    w._labels.value = outside
    w.apply()
    assert w._worker is None
    assert "far reaches outside the grid of b" in notes["error"][-1]
    assert len(viewer.layers) == count


def test_segment_a_dicom_series_and_save_a_dicom_seg(make_napari_viewer_proxy, qtbot, tmp_path,
                                                     dicom_series):  # fmt: skip
    """Open a DICOM series, segment it with the Segment dock, File > Save Layers as
    ``.dcm``: a DICOM SEG of the series that reads back as the layer, placed on the
    series' grid (the writer's menu entry is napari-seg's "DICOM SEG labels")."""
    from napari_seg.medical import place_on_grid, read_dicom_seg, read_volume

    ct, _ = cells_3d((5, 40, 48), seed=2)
    dicom_series(tmp_path / "ct", (ct * 10).astype(np.int16))
    viewer = make_napari_viewer_proxy()
    [layer] = viewer.open(tmp_path / "ct", plugin="napari-seg")
    labels = _segment_stack(viewer, qtbot, layer)
    [written] = labels.save(str(tmp_path / "ct_labels.dcm"), plugin="napari-seg")
    data, geometry, segments = read_dicom_seg(written)
    grid = read_volume(tmp_path / "ct")[1]
    np.testing.assert_array_equal(place_on_grid(data, geometry, grid, ("seg", "ct")), labels.data)
    assert [name for name, _ in segments.values()] == list(TINY_UNET.class_names[1:])


def test_a_seg_refined_in_the_refine_dock_saves_as_a_seg_of_its_series(
    make_napari_viewer_proxy, qtbot, tmp_path, dicom_series, dicom_seg, capture_notes
):
    """A study opened with its DICOM SEG: the SEG's layer spans the series (it held only
    the slices the SEG segments, so a dilation stopped at them), the Refine dock dilates
    it in 3D into the slices around, and File > Save Layers as ``.dcm`` writes a SEG of
    the series with the refined labels and the SEG's segment names (it was refused:
    'this layer records none')."""
    import warnings

    from napari_seg import refine
    from napari_seg._widgets import _refine as refine_module
    from napari_seg._widgets import refine_widget
    from napari_seg.medical import place_on_grid, read_dicom_seg, read_volume

    shape = (5, 16, 20)
    dicom_series(tmp_path / "ct", np.zeros(shape, np.int16))
    masks = np.zeros((*shape, 1), bool)
    masks[2, 4:10, 5:12, 0] = True  # one slice segmented
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's notes on the test's patient name
        dicom_seg(tmp_path / "ct" / "seg.dcm", tmp_path / "ct", masks, ["tumour"])
    viewer = make_napari_viewer_proxy()
    ct, seg = viewer.open(tmp_path / "ct", plugin="napari-seg")
    assert seg.data.shape == ct.data.shape == shape
    notes = capture_notes(refine_module)
    w = refine_widget(viewer)
    viewer.window.add_dock_widget(w, name="Refine")
    w.reset_choices()
    w._labels.value = seg
    w._op.value = "dilation"
    w._params["radius"].value = 1
    w._output.value = "replace"
    w._scope.value = "volume"
    w.apply()
    assert w._worker is not None, notes["error"]
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert notes["error"] == []
    expected = refine.dilation(masks[..., 0].astype(np.uint8), 1)
    assert expected[[1, 3]].any(axis=(1, 2)).all()  # grown into the slices around
    np.testing.assert_array_equal(seg.data, expected)
    [written] = seg.save(str(tmp_path / "refined.dcm"), plugin="napari-seg")
    data, geometry, segments = read_dicom_seg(written)
    grid = read_volume(tmp_path / "ct")[1]
    np.testing.assert_array_equal(place_on_grid(data, geometry, grid, ("seg", "ct")), expected)
    assert [name for name, _ in segments.values()] == ["tumour"]


@pytest.mark.parametrize(
    ("data", "kind", "name", "message"),
    [
        (np.ones((2, 3, 8, 8), np.uint8), "labels", "4d.nii.gz", "a medical volume is a 2D or 3D"),
        (np.ones((3, 16, 16), np.uint8), "labels", "plain.dcm", "records none"),
        (np.ones((16, 16, 3), np.uint8), "image", "photo.nrrd", "an RGB layer is a colour"),
    ],
)
def test_save_layers_says_why_napari_seg_cannot_write_a_layer(
    make_napari_viewer, tmp_path, data, kind, name, message
):
    """Saving with no writer named (``viewer.layers.save(path)`` or ``layer.save(path)``,
    as from napari's console) lets napari pick the writer by the file's name; a refusal
    was a ValueError, which napari takes for "no writer" and reported as "No data
    written! A plugin could not be found to write these 1 layers" (an RGB layer failed
    inside a matrix product). The reason now reaches the user, and nothing is written.
    Through the Save dialog with napari-seg's file type chosen, the same error is shown."""
    from napari._qt import qt_viewer
    from napari.plugins import _npe2

    from napari_seg._napari_write import LayerNotSaved

    viewer = make_napari_viewer()
    if kind == "labels":
        viewer.add_labels(data, name="mine")
    else:
        viewer.add_image(data, name="mine", rgb=True)
    path = str(tmp_path / name)
    expected = f"cannot save mine as {name}: .*{message}"
    with pytest.raises(LayerNotSaved, match=expected):
        viewer.layers.save(path, selected=True)
    ext_str, _writers = _npe2.file_extensions_string_for_layers(list(viewer.layers.selection))
    ours = next(entry for entry in ext_str.split(";;") if name.split(".", 1)[1] in entry
                and entry.startswith("napari-seg"))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(qt_viewer.QFileDialog, "getSaveFileName", lambda *a, **k: (path, ours))
        with pytest.raises(LayerNotSaved, match=expected):
            viewer.window._qt_viewer._save_layers_dialog(selected=True)
    assert list(tmp_path.iterdir()) == []
