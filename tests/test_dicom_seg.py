"""DICOM SEG files (highdicom): read as a label map of their segment numbers, where
their source series lies, named and coloured by their segments."""

import json
import warnings

import nibabel as nib
import numpy as np
import pytest

from napari_seg.cli import main
from napari_seg.medical import (
    label_segments,
    place_on_grid,
    read_dicom_seg,
    read_volume,
    write_dicom_seg,
    write_volume,
)

#: The CT's (slice, row, column) shape, in the fixture's slice order (by position).
SHAPE = (6, 16, 20)


@pytest.fixture
def study(tmp_path, dicom_series, dicom_seg):
    """A CT series in ``ct/`` and a SEG of two segments on its slices 2 and 3 (the
    others left out of the SEG, as highdicom and most tools write it) beside it; the
    label map it means on the CT's grid (segment 2 wins where both are)."""
    ct = np.random.default_rng(0).integers(0, 500, SHAPE).astype(np.int16)
    dicom_series(tmp_path / "ct", ct)
    masks = np.zeros((*SHAPE, 2), bool)
    masks[2:4, 3:8, 4:9, 0] = True
    masks[3, 6:12, 7:15, 1] = True  # overlaps segment 1 at (3, 6:8, 7:9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's notes on the test's patient name
        dicom_seg(tmp_path / "ct" / "seg.dcm", tmp_path / "ct", masks, ["liver", "Läsion"],
                  colors=[(230, 25, 25), (25, 200, 50)])  # fmt: skip
    expected = np.zeros(SHAPE, np.uint8)
    expected[masks[..., 0]] = 1
    expected[masks[..., 1]] = 2
    return tmp_path, expected


def test_a_seg_reads_as_a_label_map_where_its_series_lies(study):
    """The SEG's frames span slices 2 and 3: its label map is those two slices, placed
    in the world where the CT's slices 2 and 3 are (origin, spacing), and placed on the
    CT's grid it is the segmentation drawn; its segments name and colour the ids. Read
    as a volume (``read_volume``: every command), it is on the CT's whole grid."""
    tmp_path, expected = study
    ct, grid = read_volume(tmp_path / "ct")
    labels, geometry, segments = read_dicom_seg(tmp_path / "ct" / "seg.dcm")
    assert labels.shape == (2, *SHAPE[1:])
    np.testing.assert_array_equal(labels, expected[2:4])
    np.testing.assert_allclose(geometry.spacing, grid.spacing)
    np.testing.assert_allclose(geometry.origin, np.add(grid.origin, (2 * grid.spacing[0], 0, 0)))
    placed = place_on_grid(labels, geometry, grid, ("seg.dcm", "ct"))
    np.testing.assert_array_equal(placed, expected)
    assert [(n, name) for n, (name, _) in segments.items()] == [(1, "liver"), (2, "Läsion")]
    np.testing.assert_allclose(segments[1][1], (230 / 255, 25 / 255, 25 / 255, 1.0), atol=0.01)
    assert label_segments(tmp_path / "ct" / "seg.dcm") == segments
    assert ct.shape == SHAPE  # the folder is still its CT series: the SEG is no slice
    # read as a volume, the SEG lies on its series' grid (found beside it), recording it
    on_series, where = read_volume(tmp_path / "ct" / "seg.dcm")
    np.testing.assert_array_equal(on_series, expected)
    np.testing.assert_allclose(where.affine, grid.affine)
    assert where.series_file is not None
    assert read_volume(where.series_file)[1].array_shape == SHAPE


def test_a_fractional_seg_is_the_segment_of_the_largest_fraction_over_half(
    tmp_path, dicom_series, dicom_seg
):
    dicom_series(tmp_path / "ct", np.zeros(SHAPE, np.int16))
    fractions = np.zeros((*SHAPE, 2), np.float32)
    fractions[1, 2:6, 2:6, 0] = 0.7
    fractions[1, 4:8, 4:8, 1] = 0.9  # more than segment 1 where both are
    fractions[4, 2:4, 2:4, 1] = 0.4  # under half: no segment
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dicom_seg(tmp_path / "f.dcm", tmp_path / "ct", fractions, ["a", "b"], fractional=True)
    labels, geometry, _ = read_dicom_seg(tmp_path / "f.dcm")
    placed = place_on_grid(labels, geometry, read_volume(tmp_path / "ct")[1], ("f", "ct"))
    expected = np.zeros(SHAPE, np.uint8)
    expected[1, 2:6, 2:6] = 1
    expected[1, 4:8, 4:8] = 2
    np.testing.assert_array_equal(placed, expected)


def test_evaluate_train_and_predict_take_a_seg_beside_its_series(study, capsys):
    """evaluate scores a prediction on the CT's grid against the SEG (placed on that
    grid, its classes named by its segments), train learns from the CT and the SEG,
    and predict given the study's files (ct/*.dcm) segments the CT, not the SEG."""
    tmp_path, expected = study
    _, grid = read_volume(tmp_path / "ct")
    write_volume(tmp_path / "ct_labels.nii.gz", expected, grid)
    args = ["evaluate", "--pred", str(tmp_path / "ct_labels.nii.gz"), "--gt",
            str(tmp_path / "ct" / "seg.dcm"), "--json"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    scored = json.loads(captured.out)["classes"]
    assert [(c["class"], c["IoU"]) for c in scored] == [
        ("background", 1.0),
        ("liver", 1.0),
        ("Läsion", 1.0),
    ]
    assert [c["gt pixels"] for c in scored] == np.bincount(expected.ravel()).tolist()
    assert "covers part of the grid" not in captured.err  # read on its series' grid
    model = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "ct"), "--labels", str(tmp_path / "ct" / "seg.dcm"),
            "--label0", "background", "--epochs", "1", "--steps-per-epoch", "1", "--patch",
            "32", "--option", "depth=2", "--option", "base_width=4", "--out", str(model),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "covers part of the grid" not in capsys.readouterr().err
    from napari_seg.models import load_model

    model_file = load_model(model)
    assert model_file.spec.class_names == ("background", "liver", "Läsion")
    files = sorted(str(p) for p in (tmp_path / "ct").iterdir())
    argv = ["predict", "--model", str(model), "--output", str(tmp_path / "out"), *files,
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "DICOM SEG and RTSTRUCT files are labels, not inputs: seg.dcm" in capsys.readouterr().err
    [written] = (tmp_path / "out").iterdir()
    assert nib.load(written).shape == SHAPE[::-1]  # the CT's grid, as NIfTI (i, j, k)
    argv = ["predict", "--model", str(model), "--output", str(tmp_path / "o2"),
            str(tmp_path / "ct" / "seg.dcm")]  # fmt: skip
    assert main(argv) == 1  # it did nothing and said 0
    assert "seg.dcm: DICOM segmentations, no images to segment" in capsys.readouterr().err


def test_napari_opens_a_seg_as_named_labels_where_its_series_lies(study):
    """A SEG file opens as Labels named and coloured by its segments, on the grid of its
    series (found beside it: it covered only the slices it segments, and nothing could
    be painted beyond them); its study's folder opens it too, over the series (it was
    left out with a warning)."""
    from napari_seg._napari_io import get_reader

    tmp_path, expected = study
    path = str(tmp_path / "ct" / "seg.dcm")
    [(data, kwargs, kind)] = get_reader(path)(path)
    assert kind == "labels"
    np.testing.assert_array_equal(data, expected)
    assert kwargs["features"]["class"] == ["background", "liver", "Läsion"]
    np.testing.assert_allclose(kwargs["colormap"][2], (25 / 255, 200 / 255, 50 / 255, 1), atol=0.01)
    # the study's folder opens the CT and, over it, the SEG exported with it
    ct, seg = get_reader(str(tmp_path / "ct"))(str(tmp_path / "ct"))
    ct_kwargs = ct[1]
    assert (ct[2], seg[2], seg[1]["name"]) == ("image", "labels", "ct seg")
    np.testing.assert_array_equal(seg[0], data)
    assert seg[1]["features"] == kwargs["features"]
    np.testing.assert_allclose(seg[1]["translate"], kwargs["translate"])
    np.testing.assert_allclose(kwargs["scale"], ct_kwargs["scale"])
    np.testing.assert_allclose(kwargs["translate"], ct_kwargs["translate"])


def test_a_broken_seg_file_is_named(study):
    """A SEG cut short by an interrupted copy: a message naming the file."""
    tmp_path, _ = study
    whole = (tmp_path / "ct" / "seg.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(whole[: len(whole) - 300])
    with pytest.raises(ValueError, match=r"cut\.dcm"):
        read_volume(tmp_path / "cut.dcm")


def test_without_highdicom_a_seg_names_the_extra(study, monkeypatch):
    """highdicom comes with the medical extra; without it a SEG is refused with the
    install line (its segments' names, read with pydicom, still are)."""
    import sys

    tmp_path, _ = study
    monkeypatch.setitem(sys.modules, "highdicom", None)  # import highdicom fails
    with pytest.raises(ValueError, match=r"highdicom: pip install 'napari-seg\[medical\]'"):
        read_volume(tmp_path / "ct" / "seg.dcm")
    assert [name for name, _ in label_segments(tmp_path / "ct" / "seg.dcm").values()] == [
        "liver",
        "Läsion",
    ]


def test_predict_writes_a_dicom_seg_of_its_series(study, capsys, dicom_series):
    """--output-format dicom-seg: the labels of a DICOM series as a SEG of it (a segment
    per class but the background, named, coloured, each frame referencing its CT
    slice), the same labels as the NIfTI output once placed on the CT's grid; the
    series' files are left as they were; other inputs, block-wise runs, and a series
    of several volumes (whose slices a SEG cannot reference; refused only when written,
    after predicting) refused before any work."""
    from dataclasses import replace

    import highdicom as hd
    import pydicom
    import torch

    from napari_seg.models import ModelSpec, create_model, save_model

    tmp_path, _ = study
    torch.manual_seed(0)
    spec = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                     class_names=("background", "liver", "Läsion"),
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    save_model(create_model(spec), tmp_path / "m.safetensors")
    ct_files = {p: p.read_bytes() for p in (tmp_path / "ct").iterdir()}
    base = ["predict", "--model", str(tmp_path / "m.safetensors"), "--quiet"]
    assert main([*base, "--output", str(tmp_path / "nii"), str(tmp_path / "ct")]) == 0
    argv = [*base, "--output", str(tmp_path / "seg"), "--output-format", "dicom-seg",
            str(tmp_path / "ct")]  # fmt: skip
    assert main(argv) == 0
    assert [p.name for p in (tmp_path / "seg").iterdir()] == ["ct_labels.dcm"]
    expected, grid = read_volume(tmp_path / "nii" / "ct_labels.nii.gz")
    labels, geometry, segments = read_dicom_seg(tmp_path / "seg" / "ct_labels.dcm")
    np.testing.assert_array_equal(place_on_grid(labels, geometry, grid, ("seg", "nii")), expected)
    assert [(n, name) for n, (name, _) in segments.items()] == [(1, "liver"), (2, "Läsion")]
    np.testing.assert_allclose(segments[1][1], (*spec.class_colors[1][:3], 1.0), atol=0.01)
    seg = hd.seg.segread(tmp_path / "seg" / "ct_labels.dcm")  # highdicom: the oracle
    assert seg.SegmentationType == "BINARY"
    assert seg.Manufacturer == "napari-seg"
    ct_uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
               for p in ct_files if p.name.startswith("IM")}  # fmt: skip
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for frame in seg.PerFrameFunctionalGroupsSequence
        for item in frame.DerivationImageSequence[0].SourceImageSequence
    }
    assert referenced
    assert referenced <= ct_uids
    assert {p: p.read_bytes() for p in (tmp_path / "ct").iterdir()} == ct_files
    nifti = [*base, "--output", str(tmp_path / "x"), "--output-format", "dicom-seg",
             str(tmp_path / "nii" / "ct_labels.nii.gz")]  # fmt: skip
    assert main(nifti) == 1
    assert "dicom-seg writes the SEG of a DICOM series; these inputs are none" in (
        capsys.readouterr().err
    )
    assert main([*argv[:-1], "--block", "64", str(tmp_path / "ct")]) == 1
    assert "writes each SEG whole, not block by block" in capsys.readouterr().err
    uid = None
    for echo in (1, 2):  # a two-echo MR series: each slice position twice
        uid = dicom_series(tmp_path / "mr", np.full(SHAPE, 100 * echo, np.int16), series_uid=uid,
                           names=[f"E{echo}_{i}.dcm" for i in range(SHAPE[0])])  # fmt: skip
        for path in (tmp_path / "mr").glob(f"E{echo}_*.dcm"):
            ds = pydicom.dcmread(path)
            ds.EchoNumbers = echo
            ds.save_as(path)
    two = ["predict", "--model", str(tmp_path / "two.safetensors"), "--quiet", "--output",
           str(tmp_path / "x"), "--output-format", "dicom-seg", str(tmp_path / "mr")]  # fmt: skip
    save_model(create_model(replace(spec, in_channels=2)), tmp_path / "two.safetensors")
    assert main([*two[:-2], "auto", str(tmp_path / "mr")]) == 0  # the echoes as channels
    assert main(two) == 1
    assert "mr: the series is not one volume (several echoes" in capsys.readouterr().err
    (tmp_path / "two.safetensors").unlink()  # refused before the model is even read
    assert main(two) == 1
    assert "mr: the series is not one volume (several echoes" in capsys.readouterr().err
    assert not (tmp_path / "x" / "mr_labels.dcm").exists()


def test_a_seg_is_written_only_for_labels_it_can_number(study):
    """Segments numbered 1, 2, 3... on the series' own grid: other numbers, labels of
    another shape, or ids no segment names are refused, and nothing is written."""
    from napari_seg.medical import write_dicom_seg

    tmp_path, expected = study
    out = tmp_path / "o.dcm"
    named = {1: ("liver", ()), 2: ("lesion", ())}
    with pytest.raises(
        ValueError, match=r"1, 2, 3\.\.\.; the classes to write have label values \[1, 3\]"
    ):
        write_dicom_seg(out, expected, tmp_path / "ct", {1: ("a", ()), 3: ("b", ())})
    with pytest.raises(ValueError, match="not on the grid of ct"):
        write_dicom_seg(out, expected[1:], tmp_path / "ct", named)
    with pytest.raises(ValueError, match="ids above the last segment's, 1"):
        write_dicom_seg(out, expected, tmp_path / "ct", {1: ("liver", ())})
    assert not out.exists()
    write_dicom_seg(out, expected, tmp_path / "ct", named)
    with pytest.raises(FileExistsError):
        write_dicom_seg(out, expected * 0, tmp_path / "ct", named)
    labels, geometry, _ = read_dicom_seg(out)
    np.testing.assert_array_equal(
        place_on_grid(labels, geometry, read_volume(tmp_path / "ct")[1], ("o", "ct")), expected
    )


def test_a_labels_layer_of_a_dicom_series_saves_as_a_seg_of_it(study):
    """File > Save Layers with a .dcm name (napari-seg's writer): labels segmented from a
    DICOM series (its geometry records one of its files) become a SEG of that series,
    named by the layer's classes, or "segment N" for a layer naming none; a layer of
    another source is refused with what to do instead."""
    from napari_seg._layers import GEOMETRY_KEY
    from napari_seg._napari_io import read_layers
    from napari_seg._napari_write import write_dicom_labels

    tmp_path, expected = study
    [(_, ct, _), _seg] = read_layers(str(tmp_path / "ct"))
    recorded = ct["metadata"][GEOMETRY_KEY]
    assert recorded["series_file"].startswith(str(tmp_path / "ct"))
    meta = {"metadata": {GEOMETRY_KEY: recorded},
            "features": {"index": [0, 1, 2], "class": ["background", "liver", "cyst"]}}  # fmt: skip
    [written] = write_dicom_labels(str(tmp_path / "mine"), expected, meta)
    assert written.endswith("mine.dcm")
    labels, geometry, segments = read_dicom_seg(written)
    _, grid = read_volume(tmp_path / "ct")
    np.testing.assert_array_equal(place_on_grid(labels, geometry, grid, ("mine", "ct")), expected)
    assert [name for name, _ in segments.values()] == ["liver", "cyst"]
    [written] = write_dicom_labels(str(tmp_path / "plain.dcm"), expected,
                                       {"metadata": {GEOMETRY_KEY: recorded}})  # fmt: skip
    assert [name for name, _ in read_dicom_seg(written)[2].values()] == ["segment 1", "segment 2"]
    nifti = {**recorded}
    del nifti["series_file"]
    with pytest.raises(OSError, match="records none"):  # LayerNotSaved
        write_dicom_labels(str(tmp_path / "no.dcm"), expected, {"metadata": {GEOMETRY_KEY: nifti}})
    assert not (tmp_path / "no.dcm").exists()


def test_a_refined_or_edited_seg_saves_as_a_seg_of_its_series(study, capsys):
    """A SEG refined by ``napari-seg refine seg.dcm out.dcm`` or edited in napari and
    saved with a .dcm name is a SEG of the series it was segmented from (found beside
    it, or opened with it), placed on that series' grid, its segments kept; .dcm was
    refused ('OUTPUT must end in .tif ...') and napari's writer refused the layer
    ('records none'). A .dcm OUTPUT of labels that are no SEG, or of a SEG whose series
    is not found, is refused before the work."""
    import shutil

    from napari_seg import refine
    from napari_seg._napari_io import get_reader
    from napari_seg._napari_write import write_dicom_labels

    tmp_path, expected = study
    _, grid = read_volume(tmp_path / "ct")
    (tmp_path / "seg").mkdir()  # the SEG in a folder beside its series', as exported
    shutil.copy(tmp_path / "ct" / "seg.dcm", tmp_path / "seg" / "seg.dcm")
    for where in ("ct", "seg"):
        out = tmp_path / f"refined_{where}.dcm"
        argv = ["refine", str(tmp_path / where / "seg.dcm"), str(out), "--op", "dilation",
                "--radius", "1", "--quiet"]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        labels, geometry, segments = read_dicom_seg(out)
        placed = place_on_grid(labels, geometry, grid, ("refined", "ct"))
        np.testing.assert_array_equal(placed, refine.dilation(expected, 1))
        assert [name for name, _ in segments.values()] == ["liver", "Läsion"]
    # napari: the SEG opened alone, or with its study, saves back as a SEG of the series
    for path in (tmp_path / "seg" / "seg.dcm", tmp_path / "ct"):
        [*_, (data, meta, kind)] = get_reader(str(path))(str(path))
        assert kind == "labels"
        edited = data.copy()
        edited[0, 0, 0] = 1  # a stroke
        [written] = write_dicom_labels(str(tmp_path / "edited"), edited, meta)
        labels, geometry, segments = read_dicom_seg(written)
        with_stroke = expected.copy()
        with_stroke[0, 0, 0] = 1  # the layer spans the series: painted where the SEG was not
        np.testing.assert_array_equal(place_on_grid(labels, geometry, grid, ("e", "ct")),
                                      with_stroke)  # fmt: skip
        assert [name for name, _ in segments.values()] == ["liver", "Läsion"]
    write_volume(tmp_path / "mine.nii.gz", expected, grid)
    (tmp_path / "alone").mkdir()
    shutil.copy(tmp_path / "ct" / "seg.dcm", tmp_path / "alone" / "seg.dcm")
    shutil.move(tmp_path / "ct", tmp_path.parent / f"{tmp_path.name}-ct")  # not beside it
    shutil.rmtree(tmp_path / "seg")
    refused = {"mine.nii.gz": "mine.nii.gz is neither",
               "alone/seg.dcm": "is not in its folder or the folders beside it"}  # fmt: skip
    for source, words in refused.items():
        argv = ["refine", str(tmp_path / source), str(tmp_path / "x.dcm"), "--op", "opening"]
        assert main([*argv, "--quiet"]) == 1
        assert words in capsys.readouterr().err
        assert not (tmp_path / "x.dcm").exists()


def test_a_seg_of_a_tilted_series_lies_on_the_slices_it_references(
    tmp_path, dicom_series, dicom_seg, tilt_series, caplog
):
    """A CT acquired with a gantry tilt is read as a stack along the slice normal; a
    SEG of it (its frames at the slices' recorded, sheared positions, which highdicom
    reads as no regular volume) lies on the slices its frames reference: napari-seg's
    own SEG reads back as written, and a fractional SEG of another tool on the CT's
    grid. Away from its series, it is a stack of its own frames, said so. The tilt is
    said once, however often the series' headers are read."""
    dicom_series(tmp_path / "ct", np.zeros(SHAPE, np.int16))
    tilt_series(tmp_path / "ct", 0.3)
    _, grid = read_volume(tmp_path / "ct")
    fractions = np.zeros((*SHAPE, 2), np.float32)
    fractions[2, 2:6, 2:6, 0] = 0.7
    fractions[4, 4:8, 4:8, 1] = 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dicom_seg(tmp_path / "ct" / "f.dcm", tmp_path / "ct", fractions, ["a", "b"],
                  fractional=True)  # fmt: skip
    expected = np.zeros(SHAPE, np.uint8)
    expected[2, 2:6, 2:6], expected[4, 4:8, 4:8] = 1, 2
    np.testing.assert_array_equal(read_volume(tmp_path / "ct" / "f.dcm")[0], expected)
    labels = np.zeros(SHAPE, np.uint8)
    labels[1:4, 4:10, 5:12] = 1
    labels[5, 6, 9] = 2  # one voxel on the last slice, 1.5 mm off the stack's plane
    write_dicom_seg(tmp_path / "ct" / "seg.dcm", labels, tmp_path / "ct")
    on_series, where = read_volume(tmp_path / "ct" / "seg.dcm")
    np.testing.assert_array_equal(on_series, labels)
    np.testing.assert_allclose(where.affine, grid.affine)
    assert caplog.text.count("the slices are sheared") == 1  # once, read ever so often
    (tmp_path / "ct" / "seg.dcm").rename(tmp_path / "alone.dcm")
    alone, geometry, _ = read_dicom_seg(tmp_path / "alone.dcm")
    np.testing.assert_array_equal(alone, labels[1:])  # the frames, slices 1 to 5
    np.testing.assert_allclose(geometry.spacing, grid.spacing)
    assert "alone.dcm: the frames are sheared (a gantry tilt)" in caplog.text


@pytest.mark.parametrize("shift", [0.0, 0.3], ids=["axial", "tilted"])
def test_a_seg_of_an_enhanced_multi_frame_image_references_its_frames(
    tmp_path, enhanced_dicom, capsys, shift
):
    """A series stored as one enhanced multi-frame file (frames out of slice order) was
    refused ("not one volume of single-frame slices") by ``predict --output-format
    dicom-seg`` and napari's .dcm writer. The SEG's frames now reference the image's
    frames by number, and it reads back on the image's grid, tilted (frames sheared
    across their plane, placed by the frames they reference) or not."""
    import highdicom as hd

    from napari_seg.models import ModelSpec, create_model, save_model

    order = [3, 0, 4, 1, 2]
    positions = [(-40.0, -60.0 + z * shift, 12.0 + z * 2.5) for z in order]
    (tmp_path / "mr").mkdir()
    image = np.random.default_rng(1).integers(0, 500, (5, *SHAPE[1:])).astype(np.int16)
    enhanced_dicom(tmp_path / "mr" / "IM1", image[order], positions, spacing=(2.5, 0.8, 0.7))
    _, grid = read_volume(tmp_path / "mr")
    labels = np.zeros((5, *SHAPE[1:]), np.uint8)
    labels[1:3, 2:6, 3:9], labels[4, 7, 8] = 1, 2
    write_dicom_seg(tmp_path / "mr" / "seg.dcm", labels, tmp_path / "mr")
    seg = hd.seg.segread(tmp_path / "mr" / "seg.dcm")  # highdicom: the oracle
    for k in (1, 2, 4):  # the image's frame of slice k holds the SEG's frames of slice k
        frame = order.index(k) + 1
        expected = seg.get_pixels_by_source_frame(
            seg.SourceImageSequence[0].ReferencedSOPInstanceUID, [frame], combine_segments=True
        )
        np.testing.assert_array_equal(expected[0], labels[k])
    on_series, where = read_volume(tmp_path / "mr" / "seg.dcm")
    np.testing.assert_array_equal(on_series, labels)
    np.testing.assert_allclose(where.affine, grid.affine)
    spec = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    save_model(create_model(spec), tmp_path / "m.safetensors")
    model, out = str(tmp_path / "m.safetensors"), str(tmp_path / "out")
    argv = ["predict", "--model", model, "--quiet", "--output", out, "--output-format", "dicom-seg"]
    assert main([*argv, str(tmp_path / "mr")]) == 0, capsys.readouterr().err
    assert read_volume(tmp_path / "out" / "mr_labels.dcm")[0].shape == labels.shape
