"""Label maps written as DICOM RT structure sets of their series, and read back."""

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from napari_seg.cli import main
from napari_seg.medical import read_rtstruct, read_volume, write_rtstruct

RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"


def _blobs(shape, classes, seed):
    """Blobs of ``classes`` ids with holes, lone pixels and diagonal neighbours."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    for c in range(1, classes + 1):
        blob = ndimage.gaussian_filter(rng.random(shape), (0.4, 1.5, 1.5)) > 0.53
        labels[blob & (labels == 0)] = c
    labels[rng.random(shape) > 0.97] = rng.integers(1, classes + 1)
    labels[1, 4:12, 4:12], labels[1, 7:9, 7:9] = 1, 0  # a square with a hole
    labels[2, 2, 2] = labels[2, 3, 3] = 2  # touching at a corner only
    return labels


@pytest.fixture
def oblique_ct(tmp_path, dicom_series):
    """A CT series turned 30 degrees about z (orthonormal, anisotropic voxels) in a frame
    of reference with a patient; its folder, shape and headers by slice position."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    shape = (5, 24, 28)
    ct = (ndimage.gaussian_filter(np.random.default_rng(7).random(shape), 2) * 4000).astype(
        np.int16
    )
    dicom_series(tmp_path / "ct", ct, spacing=(3.0, 0.6, 0.9),
                 orientation=((c, s, 0), (-s, c, 0)))  # fmt: skip
    frame = pydicom.uid.generate_uid()
    for path in (tmp_path / "ct").iterdir():
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID, ds.PatientID, ds.PatientName = frame, "P-42", "Doe^Jane"
        ds.save_as(path)
    return tmp_path / "ct", shape


@pytest.mark.parametrize("seed", range(3))
def test_a_label_map_written_as_an_rtstruct_reads_back_voxel_for_voxel(oblique_ct, tmp_path, seed):
    """Every id's regions traced on every slice (holes as inner contours, pixels that
    touch at a corner apart) fill back to the same voxels on an oblique, anisotropic
    grid; the ROIs keep their names and colours, and an id without voxels is an ROI
    without contours."""
    folder, shape = oblique_ct
    labels = _blobs(shape, 3, seed)
    labels[labels == 3] = 0  # id 3: named, no voxels
    segments = {1: ("liver", (1.0, 0.0, 0.0, 1.0)), 2: ("kidney", ()), 3: ("spleen", ())}
    path = tmp_path / "out" / "plan.dcm"
    path.parent.mkdir()
    write_rtstruct(path, labels, folder, segments, algorithm="unet")
    back, geometry, read_segments = read_rtstruct(path)
    np.testing.assert_array_equal(back, labels)
    assert geometry.series_file is not None
    assert read_segments == {1: ("liver", (1.0, 0.0, 0.0, 1.0)), 2: ("kidney", ()),
                             3: ("spleen", ())}  # fmt: skip
    ds = pydicom.dcmread(path)
    assert [len(getattr(r, "ContourSequence", [])) > 0 for r in ds.ROIContourSequence] == [
        True, True, False]  # fmt: skip


def test_an_rtstruct_references_its_study_series_frame_and_each_contour_s_slice(
    oblique_ct, tmp_path
):
    """What a planning system checks on import: the IOD's SOP class and modality, the
    patient and study of the images, the images' frame of reference, every slice of
    the series listed, and each contour referencing the image of the slice it lies on."""
    folder, shape = oblique_ct
    labels = _blobs(shape, 2, 0)
    write_rtstruct(tmp_path / "plan.dcm", labels, folder)
    ds = pydicom.dcmread(tmp_path / "plan.dcm")
    images = {f.SOPInstanceUID: f for f in map(pydicom.dcmread, sorted(folder.iterdir()))}
    first = next(iter(images.values()))
    assert (ds.SOPClassUID, ds.file_meta.MediaStorageSOPClassUID) == (RTSTRUCT, RTSTRUCT)
    assert ds.Modality == "RTSTRUCT"
    assert ds.SeriesInstanceUID != first.SeriesInstanceUID
    assert (ds.PatientID, str(ds.PatientName), ds.StudyInstanceUID) == (
        "P-42", "Doe^Jane", first.StudyInstanceUID)  # fmt: skip
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == first.FrameOfReferenceUID
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence} == set(images)
    assert [r.ROIName for r in ds.StructureSetROISequence] == ["ROI 1", "ROI 2"]
    normal = np.cross(*np.reshape(first.ImageOrientationPatient, (2, 3)))
    contours = [c for r in ds.ROIContourSequence for c in r.ContourSequence]
    assert len(contours) >= 2 * shape[0]
    for contour in contours:
        image = images[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
        points = np.reshape(np.asarray(contour.ContourData, float), (-1, 3))
        assert contour.NumberOfContourPoints == len(points) >= 3
        depth = (points - np.asarray(image.ImagePositionPatient, float)) @ normal
        np.testing.assert_allclose(depth, 0, atol=1e-6)  # on its slice's plane


def test_what_cannot_be_an_rtstruct_is_refused_and_nothing_is_written(oblique_ct, tmp_path):
    """Labels off the series' grid, not integer ids, ids no segment names, more ROIs
    than a structure set holds, an existing file without overwrite, or a slice without
    the UID it is referenced by: a message naming the problem, no file replaced."""
    folder, shape = oblique_ct
    labels = _blobs(shape, 2, 1)
    out = tmp_path / "plan.dcm"
    with pytest.raises(ValueError, match=r"labels of shape \(5, 24, 27\) are not on the grid"):
        write_rtstruct(out, labels[..., :-1], folder)
    with pytest.raises(ValueError, match="integer ids >= 0, not float32"):
        write_rtstruct(out, labels.astype(np.float32), folder)
    with pytest.raises(ValueError, match=r"ids that no segment names \(2\)"):
        write_rtstruct(out, labels, folder, {1: ("liver", ())})
    huge = labels.astype(np.uint64)
    huge[0, 0, 0] = 2**63
    with pytest.raises(
        ValueError, match="9223372036854775808 ROIs: an RT structure set written here holds at most"
    ):
        write_rtstruct(out, huge, folder)  # refused before a list of 2**63 ROI numbers
    assert not out.exists()
    out.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError):
        write_rtstruct(out, labels, folder)
    assert out.read_bytes() == b"the user's file"
    broken = sorted(folder.iterdir())[2]
    ds = pydicom.dcmread(broken)
    del ds.SOPInstanceUID
    ds.save_as(broken)
    with pytest.raises(ValueError, match=f"{broken.name} states no SOPInstanceUID, which an RT"):
        write_rtstruct(tmp_path / "other.dcm", labels, folder)
    assert not (tmp_path / "other.dcm").exists()


def test_predict_writes_an_rtstruct_of_a_dicom_series(oblique_ct, tmp_path, capsys):
    """``predict --output-format rtstruct`` writes NAME_labels.dcm, an RT structure set
    of the input series whose label map is the one the same model writes as NIfTI, an
    ROI per class but the background, named; a non-DICOM input and a block-wise run
    are refused before any work."""
    import torch

    from napari_seg.models import ModelSpec, create_model, save_model

    folder, _ = oblique_ct
    torch.manual_seed(4)
    spec = ModelSpec("unet", encoder="classic", in_channels=1, num_classes=3,
                     class_names=("background", "liver", "Läsion"),
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    model = create_model(spec)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # random weights predict one class almost everywhere
        head.weight.mul_(100)
        head.bias.zero_()
    save_model(model, tmp_path / "m.safetensors")
    base = ["predict", "--model", str(tmp_path / "m.safetensors"), "--quiet"]
    assert main([*base, "--output", str(tmp_path / "nii"), str(folder)]) == 0
    argv = [*base, "--output", str(tmp_path / "rt"), "--output-format", "rtstruct", str(folder)]
    assert main(argv) == 0
    expected, _ = read_volume(tmp_path / "nii" / "ct_labels.nii.gz")
    assert len(np.unique(expected)) == 3  # contours of both classes to write
    labels, _, segments = read_rtstruct(tmp_path / "rt" / "ct_labels.dcm")
    np.testing.assert_array_equal(labels, expected)
    assert [name for name, _ in segments.values()] == ["liver", "Läsion"]
    assert pydicom.dcmread(tmp_path / "rt" / "ct_labels.dcm").SpecificCharacterSet == "ISO_IR 192"
    nifti = [*argv[:-1], str(tmp_path / "nii" / "ct_labels.nii.gz")]
    assert main(nifti) == 1
    assert "rtstruct writes the RT structure set of a DICOM series; these inputs are none" in (
        capsys.readouterr().err
    )
    assert main([*argv[:-1], "--block", "64", str(folder)]) == 1
    assert "writes each RT structure set whole, not block by block" in capsys.readouterr().err


def test_contours_lie_on_a_tilted_series_recorded_slices_both_ways(
    tmp_path, dicom_series, tilt_series
):
    """A CT acquired with a gantry tilt (each slice recorded 0.3 mm further along its
    column direction) is stacked along the normal; contours are written on the slices'
    recorded planes (a voxel's contour centred on where its slice records that pixel,
    not where the stack puts it: up to 1.2 mm apart here), and a planning system's
    contour drawn at the recorded positions reads back on the voxels it encloses."""
    shape, (dz, dy, dx), shift = (5, 16, 20), (2.5, 0.8, 0.7), 0.3
    dicom_series(tmp_path / "ct", np.zeros(shape, np.int16), spacing=(dz, dy, dx))
    tilt_series(tmp_path / "ct", shift)  # the tilt: a drift down the columns
    labels = np.zeros(shape, np.uint8)
    labels[4, 6, 9] = 1  # one voxel on the last slice
    write_rtstruct(tmp_path / "one.dcm", labels, tmp_path / "ct")
    ds = pydicom.dcmread(tmp_path / "one.dcm")
    [contour] = ds.ROIContourSequence[0].ContourSequence
    centre = np.reshape(np.asarray(contour.ContourData, float), (-1, 3)).mean(axis=0)
    recorded = np.array([-40.0 + 9 * dx, -60.0 + 4 * shift + 6 * dy, 12.0 + 4 * dz])
    np.testing.assert_allclose(centre, recorded, atol=1e-6)
    np.testing.assert_array_equal(read_rtstruct(tmp_path / "one.dcm")[0], labels)
    blob = _blobs(shape, 2, 3)
    write_rtstruct(tmp_path / "blobs.dcm", blob, tmp_path / "ct")
    np.testing.assert_array_equal(read_rtstruct(tmp_path / "blobs.dcm")[0], blob)
    # a square drawn around rows 3..6, columns 2..5 of slice 3 at its recorded positions
    rows, cols = np.array([2.5, 2.5, 6.5, 6.5]), np.array([1.5, 5.5, 5.5, 1.5])
    points = np.c_[-40.0 + cols * dx, -60.0 + 3 * shift + rows * dy, np.full(4, 12.0 + 3 * dz)]
    contour.ContourData = [round(float(v), 4) for v in points.ravel()]
    contour.NumberOfContourPoints = 4
    contour.ContourImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"  # not checked
    ds.save_as(tmp_path / "drawn.dcm")
    expected = np.zeros(shape, np.uint8)
    expected[3, 3:7, 2:6] = 1
    np.testing.assert_array_equal(read_rtstruct(tmp_path / "drawn.dcm")[0], expected)


def test_what_each_roi_is_survives_refine_and_napari(oblique_ct, tmp_path):
    """The ROI types a planning system relies on (RTROIInterpretedType: EXTERNAL, PTV,
    ORGAN) are written as given (as DICOM code strings), read back by label id, and
    kept by ``refine plan.dcm refined.dcm`` and by napari's reader and .dcm writer (both
    wrote them empty); a layer's broken record of them is ignored, not a failure."""
    from napari_seg._layers import ROI_TYPES_KEY
    from napari_seg._napari_io import get_reader
    from napari_seg._napari_write import write_dicom_labels
    from napari_seg.medical import rtstruct_roi_types

    folder, shape = oblique_ct
    labels = _blobs(shape, 3, 2)
    plan = tmp_path / "rt" / "plan.dcm"
    plan.parent.mkdir()
    segments = {1: ("body", ()), 2: ("PTV 60", ()), 3: ("cord", ())}
    write_rtstruct(plan, labels, folder, segments, roi_types={1: "external", 2: "PTV!"})
    assert rtstruct_roi_types(plan) == {1: "EXTERNAL", 2: "PTV"}
    argv = ["refine", str(plan), str(tmp_path / "refined.dcm"), "--op", "remove_small_objects",
            "--min-size", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert rtstruct_roi_types(tmp_path / "refined.dcm") == {1: "EXTERNAL", 2: "PTV"}
    [(data, meta, _)] = get_reader(str(plan))(str(plan))
    [saved] = write_dicom_labels(str(tmp_path / "saved.dcm"), data, meta)
    assert rtstruct_roi_types(saved) == {1: "EXTERNAL", 2: "PTV"}
    meta["metadata"][ROI_TYPES_KEY] = ["not", "a", "mapping"]
    [saved] = write_dicom_labels(str(tmp_path / "broken.dcm"), data, meta)
    assert rtstruct_roi_types(saved) == {}


def test_an_rtstruct_of_an_enhanced_multi_frame_image_references_its_frames(
    tmp_path, enhanced_dicom
):
    """A series stored as one enhanced multi-frame file (frames out of slice order)
    was refused as "not one volume of single-frame slices". Each contour now
    references the image and the frame of its slice (ReferencedFrameNumber), the
    series the image once, and the structure set reads back voxel for voxel."""
    shape, order = (5, 14, 18), [3, 0, 4, 1, 2]
    positions = [(-40.0, -60.0, 12.0 + z * 2.5) for z in order]
    (tmp_path / "mr").mkdir()
    image = np.zeros(shape, np.int16)
    enhanced_dicom(tmp_path / "mr" / "IM1", image[order], positions, spacing=(2.5, 0.8, 0.7))
    labels = _blobs(shape, 2, 4)
    write_rtstruct(tmp_path / "rs.dcm", labels, tmp_path / "mr")
    np.testing.assert_array_equal(read_rtstruct(tmp_path / "rs.dcm")[0], labels)
    ds = pydicom.dcmread(tmp_path / "rs.dcm")
    uid = pydicom.dcmread(tmp_path / "mr" / "IM1").SOPInstanceUID
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    [referenced] = series.RTReferencedSeriesSequence[0].ContourImageSequence
    assert referenced.ReferencedSOPInstanceUID == uid
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            [image_ref] = contour.ContourImageSequence
            assert image_ref.ReferencedSOPInstanceUID == uid
            z = float(contour.ContourData[2])  # the frame recorded at this height
            assert positions[image_ref.ReferencedFrameNumber - 1][2] == pytest.approx(z)
