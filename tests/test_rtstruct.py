"""DICOM RT structure sets: contours read as a label map on the grid of their series."""

import json
import shutil

import numpy as np
import pytest

from napari_seg.cli import main
from napari_seg.medical import label_segments, read_volume, write_volume

#: The CT's (slice, row, column) shape; the conftest series' spacing and origin (LPS mm).
SHAPE = (6, 16, 20)
SPACING, ORIGIN = (2.5, 0.8, 0.7), (-40.0, -60.0, 12.0)
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"


def _lps(k, rows, cols):
    """Points of a contour given in (fractional) pixel indices of slice ``k``, in LPS mm."""
    return [(ORIGIN[0] + c * SPACING[2], ORIGIN[1] + r * SPACING[1], ORIGIN[2] + k * SPACING[0])
            for r, c in zip(rows, cols, strict=True)]  # fmt: skip


def _box(k, r0, r1, c0, c1):
    """A rectangle around pixel centres rows r0..r1-1, columns c0..c1-1 of slice k."""
    rows = [r0 - 0.5, r0 - 0.5, r1 - 0.5, r1 - 0.5]
    cols = [c0 - 0.5, c1 - 0.5, c1 - 0.5, c0 - 0.5]
    return _lps(k, rows, cols)


def write_rtstruct(path, series_uid, rois, frame_uid=None):
    """An RTSTRUCT of ``rois``: ``(number, name, colour, [(type, points), ...])``, drawn
    on the series ``series_uid`` (None: naming only the frame of reference
    ``frame_uid``)."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTSTRUCT, generate_uid(), "RTSTRUCT"
    ds.StructureSetLabel = "plan"
    frame, series, study = Dataset(), Dataset(), Dataset()
    frame.FrameOfReferenceUID = frame_uid or generate_uid()
    if series_uid is not None:
        series.SeriesInstanceUID = series_uid
        study.RTReferencedSeriesSequence = [series]
        frame.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence = [], []
    for number, name, colour, contours in rois:
        roi, drawn = Dataset(), Dataset()
        roi.ROINumber, roi.ROIName = number, name
        drawn.ReferencedROINumber, drawn.ROIDisplayColor = number, list(colour)
        drawn.ContourSequence = []
        for kind, points in contours:
            contour = Dataset()
            contour.ContourGeometricType, contour.NumberOfContourPoints = kind, len(points)
            contour.ContourData = [round(float(v), 4) for p in points for v in p]
            drawn.ContourSequence.append(contour)
        ds.StructureSetROISequence.append(roi)
        ds.ROIContourSequence.append(drawn)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def plan(tmp_path, dicom_series):
    """A CT series in ``ct/`` and an RTSTRUCT of two ROIs beside it in ``rt/``: "GTV"
    (ROI number 7) on slices 2 and 3 with a hole on slice 3, "cord" (number 3) on slice
    4 and over part of the GTV on slice 2, and a point marker; the label map it means."""
    uid = dicom_series(tmp_path / "ct", np.zeros(SHAPE, np.int16))
    gtv = [("CLOSED_PLANAR", _box(2, 3, 8, 4, 10)), ("CLOSED_PLANAR", _box(3, 3, 8, 4, 10)),
           ("CLOSED_PLANAR", _box(3, 5, 7, 6, 8)), ("POINT", _lps(1, [4], [4]))]  # fmt: skip
    cord = [("CLOSED_PLANAR", _box(4, 9, 13, 11, 15)), ("CLOSED_PLANAR", _box(2, 6, 7, 9, 12))]
    (tmp_path / "rt").mkdir()
    write_rtstruct(tmp_path / "rt" / "plan.dcm", uid,
                   [(7, "GTV", (255, 0, 0), gtv), (3, "cord", (0, 128, 255), cord)])  # fmt: skip
    expected = np.zeros(SHAPE, np.uint8)
    expected[2:4, 3:8, 4:10] = 1
    expected[3, 5:7, 6:8] = 0  # the hole
    expected[4, 9:13, 11:15] = 2
    expected[2, 6, 9:12] = 2  # the later ROI over the earlier
    return tmp_path, expected


def test_an_rtstruct_reads_as_a_label_map_on_its_series_grid(plan):
    """Contours are filled where voxel centres lie inside them, a contour inside another
    of the same ROI and slice is a hole, ROIs are ids 1, 2... in the structure set's
    order (a later one over an earlier one), points are left out; the map lies on the
    series found beside it, named and coloured by the ROIs (it was refused: 'an RT
    structure set (contours, not voxels): convert it ... dcmrtstruct2nii')."""
    tmp_path, expected = plan
    labels, geometry = read_volume(tmp_path / "rt" / "plan.dcm")
    np.testing.assert_array_equal(labels, expected)
    _, grid = read_volume(tmp_path / "ct")
    np.testing.assert_allclose(geometry.affine, grid.affine)
    assert geometry.series_file is not None
    segments = label_segments(tmp_path / "rt" / "plan.dcm")
    assert [(k, name) for k, (name, _) in segments.items()] == [(1, "GTV"), (2, "cord")]
    np.testing.assert_allclose(segments[2][1], (0, 128 / 255, 1, 1))


def test_napari_opens_an_rtstruct_alone_or_with_its_study(plan):
    """An RTSTRUCT file opens as named Labels over its series; its study's folder opens
    it too, with the CT (it was left out with a warning)."""
    from napari_seg._napari_io import get_reader

    tmp_path, expected = plan
    path = str(tmp_path / "rt" / "plan.dcm")
    [(data, kwargs, kind)] = get_reader(path)(path)
    assert kind == "labels"
    np.testing.assert_array_equal(data, expected)
    assert kwargs["features"]["class"] == ["background", "GTV", "cord"]
    shutil.move(tmp_path / "rt" / "plan.dcm", tmp_path / "ct" / "plan.dcm")
    ct, rt = get_reader(str(tmp_path / "ct"))(str(tmp_path / "ct"))
    assert (ct[2], rt[2]) == ("image", "labels")
    np.testing.assert_array_equal(rt[0], expected)
    np.testing.assert_allclose(rt[1]["translate"], ct[1]["translate"])


def test_evaluate_scores_a_prediction_against_an_rtstruct(plan, capsys):
    """The clinical ground truth of radiotherapy: ``evaluate --gt plan.dcm`` scores a
    prediction on the CT's grid against the contours, classes named by the ROIs."""
    tmp_path, expected = plan
    _, grid = read_volume(tmp_path / "ct")
    write_volume(tmp_path / "pred_labels.nii.gz", expected, grid)
    argv = ["evaluate", "--pred", str(tmp_path / "pred_labels.nii.gz"), "--gt",
            str(tmp_path / "rt" / "plan.dcm"), "--json"]  # fmt: skip
    assert main(argv) == 0
    scored = json.loads(capsys.readouterr().out)["classes"]
    assert [(c["class"], c["IoU"]) for c in scored] == [
        ("background", 1.0), ("GTV", 1.0), ("cord", 1.0)]  # fmt: skip


def test_an_rtstruct_is_refined_and_saved_back_as_an_rtstruct_of_its_series(plan):
    """``refine plan.dcm refined.dcm`` and napari's File > Save Layers of the layer read
    from it with a .dcm name write an RT structure set of its series (they wrote a DICOM
    SEG), the ROIs kept with their names; a layer segmented from the CT is saved as a
    SEG, or as an RT structure set when its name says so (RS_*.dcm, *rtstruct*)."""
    from napari_seg._napari_io import get_reader
    from napari_seg._napari_write import write_dicom_labels
    from napari_seg.medical import is_dicom_seg, is_rtstruct, read_rtstruct

    tmp_path, expected = plan
    argv = ["refine", str(tmp_path / "rt" / "plan.dcm"), str(tmp_path / "refined.dcm"),
            "--op", "remove_small_objects", "--min-size", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    path = str(tmp_path / "rt" / "plan.dcm")
    [(data, meta, _)] = get_reader(path)(path)
    [saved] = write_dicom_labels(str(tmp_path / "saved"), data, meta)
    for written in (tmp_path / "refined.dcm", saved):
        assert is_rtstruct(written)
        labels, _, segments = read_rtstruct(written)
        np.testing.assert_array_equal(labels, expected)
        assert [name for name, _ in segments.values()] == ["GTV", "cord"]
    ct = str(tmp_path / "ct")
    [(_image, ct_meta, _)] = get_reader(ct)(ct)
    for name, rtstruct in (("mask.dcm", False), ("RS_mask.dcm", True), ("my_rtstruct", True)):
        [written] = write_dicom_labels(str(tmp_path / name), expected, ct_meta)
        assert (is_rtstruct(written), is_dicom_seg(written)) == (rtstruct, not rtstruct)


def test_a_structure_painted_in_napari_is_saved_with_the_named_ones(plan):
    """A new id painted on the RTSTRUCT's layer (no class names it) is saved too, as
    "ROI 3" in an RT structure set and "segment 3" in a SEG of the same layer (both
    refused the layer before)."""
    from napari_seg._layers import DICOM_KIND_KEY
    from napari_seg._napari_io import get_reader
    from napari_seg._napari_write import write_dicom_labels
    from napari_seg.medical import place_on_grid, read_dicom_seg, read_rtstruct

    tmp_path, _ = plan
    path = str(tmp_path / "rt" / "plan.dcm")
    [(data, meta, _)] = get_reader(path)(path)
    painted = np.array(data)
    painted[5, 0:3, 0:4] = 3
    [saved] = write_dicom_labels(str(tmp_path / "added.dcm"), painted, meta)
    labels, grid, segments = read_rtstruct(saved)
    np.testing.assert_array_equal(labels, painted)
    assert [name for name, _ in segments.values()] == ["GTV", "cord", "ROI 3"]
    as_seg = {
        **meta,
        "metadata": {k: v for k, v in meta["metadata"].items() if k != DICOM_KIND_KEY},
    }
    [saved] = write_dicom_labels(str(tmp_path / "added_seg.dcm"), painted, as_seg)
    labels, geometry, segments = read_dicom_seg(saved)
    np.testing.assert_array_equal(place_on_grid(labels, geometry, grid, ("s", "ct")), painted)
    assert [name for name, _ in segments.values()] == ["GTV", "cord", "segment 3"]


def test_an_rtstruct_without_its_series_or_off_its_slices_is_named(plan, tmp_path_factory):
    """Its series not beside it, a contour between two slices, or one of coordinates
    that are not numbers: a message naming the file (and the ROI), no label map."""
    tmp_path, _ = plan
    alone = tmp_path_factory.mktemp("alone")
    shutil.copy(tmp_path / "rt" / "plan.dcm", alone / "plan.dcm")
    with pytest.raises(ValueError, match=r"plan\.dcm: the image series its contours were drawn"):
        read_volume(alone / "plan.dcm")
    uid = str(read_volume(tmp_path / "ct")[1].series_file)
    import pydicom

    uid = pydicom.dcmread(uid, stop_before_pixels=True).SeriesInstanceUID
    between = _lps(2.5, [3, 3, 7], [4, 9, 9])  # halfway between slices 2 and 3
    write_rtstruct(tmp_path / "rt" / "off.dcm", uid,
                   [(1, "GTV", (255, 0, 0), [("CLOSED_PLANAR", between)])])  # fmt: skip
    with pytest.raises(ValueError, match=r"off\.dcm: ROI 1: a contour does not lie on one"):
        read_volume(tmp_path / "rt" / "off.dcm")
    broken = [[*p[:2], float("nan")] for p in _box(2, 3, 8, 4, 10)]
    write_rtstruct(tmp_path / "rt" / "nan.dcm", uid,
                   [(1, "GTV", (255, 0, 0), [("CLOSED_PLANAR", broken)])])  # fmt: skip
    with pytest.raises(ValueError, match=r"nan\.dcm: ROI 1: a contour's data is not"):
        read_volume(tmp_path / "rt" / "nan.dcm")


def test_an_rtstruct_naming_only_its_frame_of_reference_finds_its_series(plan):
    """Some planning systems name only the frame of reference the contours are in:
    the series beside the file in that frame is the grid (the first one found)."""
    import pydicom
    from pydicom.uid import generate_uid

    tmp_path, _ = plan
    frame = generate_uid()
    for path in (tmp_path / "ct").iterdir():
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame
        ds.save_as(path)
    gtv = [("CLOSED_PLANAR", _box(2, 3, 8, 4, 10))]
    write_rtstruct(tmp_path / "rt" / "frame.dcm", None, [(1, "GTV", (255, 0, 0), gtv)],
                   frame_uid=frame)  # fmt: skip
    labels, _ = read_volume(tmp_path / "rt" / "frame.dcm")
    box = np.zeros(SHAPE, np.uint8)
    box[2, 3:8, 4:10] = 1
    np.testing.assert_array_equal(labels, box)


@pytest.mark.parametrize("seed", range(16))
def test_the_scanline_fill_gives_scikit_images_polygon(seed):
    """The contour fill is the same set of pixels as ``skimage.draw.polygon`` (centres
    inside) on random, self-intersecting and partly outside polygons (even-odd rule)."""
    from skimage.draw import polygon

    from napari_seg.medical._rtstruct import polygon_mask

    rng = np.random.default_rng(seed)
    shape = (40, 50)
    n = int(rng.integers(3, 40))
    first, second = rng.uniform(-8, 48, n), rng.uniform(-8, 58, n)  # some vertices outside
    if seed % 2:  # a star: its edges cross each other
        angles = np.sort(rng.uniform(0, 2 * np.pi, n)) * 3
        radius = rng.uniform(5, 25, n)
        first, second = 20 + radius * np.sin(angles), 25 + radius * np.cos(angles)
    expected = np.zeros(shape, bool)
    expected[polygon(first, second, shape)] = True
    np.testing.assert_array_equal(polygon_mask(first, second, shape), expected)


def test_a_series_claiming_a_huge_grid_is_refused_before_a_map_is_made(plan):
    """Hostile headers: the series' slices claim 65535 x 65535 pixels (25 GiB of labels
    over its 6 slices); the structure set is refused by name, nothing is allocated."""
    import pydicom

    tmp_path, _ = plan
    for path in (tmp_path / "ct").iterdir():
        ds = pydicom.dcmread(path)
        ds.Rows = ds.Columns = 65535
        ds.save_as(path)
    with pytest.raises(ValueError, match=r"header claims \(65535, 65535, 6\) voxels"):
        read_volume(tmp_path / "rt" / "plan.dcm")


def test_a_structure_set_cut_short_is_named(plan):
    """A copy cut short inside its last ROI's contours: pydicom reads what is there
    without a word, and that ROI's contours lost the number of the ROI they draw (it
    was left out silently); a contour whose points are fewer than it states (a damaged
    copy) too. Both refused, naming the file."""
    import pydicom

    tmp_path, _ = plan
    whole = (tmp_path / "rt" / "plan.dcm").read_bytes()
    (tmp_path / "rt" / "cut.dcm").write_bytes(whole[:-40])
    with pytest.raises(ValueError, match=r"cut\.dcm: an ROI's contours name no ROI .*truncated"):
        read_volume(tmp_path / "rt" / "cut.dcm")
    ds = pydicom.dcmread(tmp_path / "rt" / "plan.dcm")
    ds.ROIContourSequence[1].ContourSequence[0].NumberOfContourPoints = 5
    ds.save_as(tmp_path / "rt" / "short.dcm")
    with pytest.raises(ValueError, match=r"short\.dcm: ROI 3: a contour holds 4 points where it"):
        read_volume(tmp_path / "rt" / "short.dcm")
