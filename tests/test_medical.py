"""NIfTI and DICOM volumes: the stated axis order, exact round trips, clear errors."""

import importlib.util
import json
import pathlib
import re

import nibabel as nib
import numpy as np
import pytest
from nibabel import orientations as no

from napari_seg._layers import BACKGROUND_KEY, GEOMETRY_KEY
from napari_seg.medical import (
    VolumeGeometry,
    label_path,
    nifti_is_label_map,
    read_dicom,
    read_nifti,
    read_volume,
    write_nifti,
)


def volume(shape=(7, 9, 11), seed=0):
    return np.random.default_rng(seed).integers(0, 200, shape).astype(np.int16)


def save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def reoriented(data, affine, codes):
    """The same volume stored in another voxel order (a permutation/flip, same world)."""
    t = no.ornt_transform(no.io_orientation(affine), no.axcodes2ornt(codes))
    return no.apply_orientation(data, t), affine @ no.inv_ornt_aff(t, data.shape)


RAS = np.array([[0.8, 0, 0, -30], [0, 0.9, 0, -40], [0, 0, 2.5, 10], [0, 0, 0, 1.0]])


@pytest.mark.parametrize(
    "codes", [("R", "A", "S"), ("L", "P", "S"), ("P", "S", "R"), ("I", "L", "A")]
)
def test_any_voxel_order_gives_the_same_lps_array_and_writes_back_exactly(tmp_path, codes):
    data = volume()
    reference, _ = read_nifti(save(tmp_path / "ref.nii", data, RAS))
    stored, affine = reoriented(data, RAS, codes)
    array, geometry = read_nifti(save(tmp_path / "in.nii.gz", stored, affine))
    np.testing.assert_array_equal(array, reference)
    assert geometry.spacing == pytest.approx((2.5, 0.9, 0.8))  # (z, y, x)
    labels = (array > 100).astype(np.uint8)
    write_nifti(tmp_path / "out.nii.gz", labels, geometry)
    back = nib.load(tmp_path / "out.nii.gz")
    assert back.shape == stored.shape
    np.testing.assert_allclose(back.affine, affine)
    np.testing.assert_array_equal(np.asarray(back.dataobj), stored > 100)
    assert back.get_data_dtype() == np.uint8


def test_axis_order_is_z_y_x_in_lps(tmp_path):
    """Axis 0 inferior to superior, axis 1 anterior to posterior, axis 2 right to left;
    the origin is voxel (0, 0, 0)'s LPS position."""
    data = np.zeros((5, 6, 7), np.uint8)  # RAS file: i -> right, j -> anterior, k -> superior
    data[4, 0, 0] = 1  # the most right, most posterior, most inferior voxel
    array, geometry = read_nifti(save(tmp_path / "a.nii", data, RAS))
    assert array.shape == (7, 6, 5)
    assert tuple(np.argwhere(array)[0]) == (0, 5, 0)  # inferior, posterior, right
    # LPS world of voxel (0, 0, 0) of the array: right-most x, anterior-most y, lowest z
    ras = RAS @ [4, 5, 0, 1]
    assert geometry.origin == pytest.approx((ras[2], -ras[1], -ras[0]))
    assert not geometry.oblique
    meta = geometry.to_metadata()
    again = VolumeGeometry.from_metadata(meta)
    np.testing.assert_allclose(again.affine, geometry.affine)
    assert again.spacing == geometry.spacing


def test_oblique_affine_is_flagged_and_kept(tmp_path):
    angle = np.deg2rad(20)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.0, 1.0, 3.0])
    array, geometry = read_nifti(save(tmp_path / "o.nii", volume(), affine))
    assert geometry.oblique
    assert geometry.spacing == pytest.approx((3.0, 1.0, 1.0))
    write_nifti(tmp_path / "o_labels.nii", (array > 50).astype(np.uint8), geometry)
    np.testing.assert_allclose(nib.load(tmp_path / "o_labels.nii").affine, affine)


@pytest.mark.parametrize(
    ("slope", "inter", "kind"),
    [(1.0, -1024.0, np.int16), (0.5, 0.0, np.float32), (2.5, 7.0, np.float32)],
)
def test_scaled_voxels_are_read_as_a_rescaled_dicom_series(tmp_path, slope, inter, kind):
    """A CT stored as int16 with scl_inter -1024 (or a PET with a fractional slope) was
    read as float64, as nibabel scales it: four times the memory of int16 (a 512^2 x 300
    CT 630 MB instead of 158), where the same series read as DICOM keeps whole numbers
    (int16 here) and makes others float32. The header's size check counted the stored
    int16's 2 bytes."""
    data = volume()
    image = nib.Nifti1Image(data, RAS)
    image.header.set_slope_inter(slope, inter)
    nib.save(image, str(tmp_path / "ct.nii.gz"))
    array, _ = read_nifti(tmp_path / "ct.nii.gz")
    unscaled, _ = read_nifti(save(tmp_path / "raw.nii", data, RAS))
    assert array.dtype == kind
    np.testing.assert_allclose(array, unscaled * slope + inter, rtol=1e-6)
    assert unscaled.dtype == np.int16  # unscaled files keep their type


def test_4d_is_channels_and_5d_or_broken_files_are_refused(tmp_path):
    """4D files' volumes are channels, as are a 5D file's components when it has one
    time point, or time points when they are many; other 5D files and broken ones are
    refused, naming the file."""
    data = np.stack([volume(seed=s) for s in range(3)], axis=-1)
    array, _ = read_nifti(save(tmp_path / "four.nii", data, RAS))
    assert array.shape == (3, 11, 9, 7)
    np.testing.assert_array_equal(
        array[1], read_nifti(save(tmp_path / "c1.nii", data[..., 1], RAS))[0]
    )
    # ITK and SimpleITK write a multi-component volume as 5D: one time point, the
    # components on the 5th axis; they were refused as 5D
    five, _ = read_nifti(save(tmp_path / "five.nii", data[..., None, :], RAS))
    np.testing.assert_array_equal(five, array)
    with pytest.raises(ValueError, match=r"5D NIfTI \(7, 9, 11, 2, 3\) .*split it"):
        read_nifti(save(tmp_path / "t2c3.nii", np.stack([data, data], axis=3), RAS))
    # a functional series' hundreds of time points were refused ("at most 64 ... as
    # channels") while the README promised them: they open as one layer over time
    fmri = np.random.default_rng(0).integers(0, 200, (4, 5, 6, 100), dtype=np.uint8)
    series, _ = read_nifti(save(tmp_path / "fmri.nii", fmri, RAS))
    assert series.shape == (100, 6, 5, 4)
    np.testing.assert_array_equal(
        series[57], read_nifti(save(tmp_path / "t57.nii", fmri[..., 57], RAS))[0]
    )
    from napari_seg._napari_io import read_layers

    [(layer, kwargs, kind)] = read_layers(str(tmp_path / "fmri.nii"))
    assert (kind, layer.shape, len(kwargs["scale"])) == ("image", (100, 6, 5, 4), 4)
    broken = tmp_path / "broken.nii"
    broken.write_bytes(b"\x5c\x01" + b"\0" * 346 + b"n+1\0" + b"\0" * 10)
    with pytest.raises(ValueError, match=r"broken\.nii"):
        read_nifti(broken)
    truncated = tmp_path / "short.nii.gz"
    truncated.write_bytes((tmp_path / "four.nii").read_bytes()[:400])
    with pytest.raises(ValueError, match=r"short\.nii\.gz"):
        read_volume(truncated)


@pytest.mark.parametrize("nifti", [nib.Nifti1Image, nib.Nifti2Image])
def test_a_nifti_named_against_its_compression_reads_by_its_content(tmp_path, nifti):
    """An uncompressed file named .nii.gz (as some datasets ship and browsers leave
    downloads) and a gzipped one named .nii: read as ITK reads them, by their first
    bytes, label intent included; nibabel refuses both by their names."""
    import gzip

    data = volume()
    image = nifti(data, RAS)
    image.header.set_intent("label")
    nib.save(image, str(tmp_path / "right.nii"))
    plain = (tmp_path / "right.nii").read_bytes()
    (tmp_path / "plain.nii.gz").write_bytes(plain)
    (tmp_path / "zipped.nii").write_bytes(gzip.compress(plain))
    expected, geometry = read_nifti(tmp_path / "right.nii")
    for name in ("plain.nii.gz", "zipped.nii"):
        array, got = read_volume(tmp_path / name)
        np.testing.assert_array_equal(array, expected)
        np.testing.assert_allclose(got.affine, geometry.affine)
        assert got.source == geometry.source
        assert nifti_is_label_map(tmp_path / name)
    (tmp_path / "text.nii.gz").write_text("not an image")
    with pytest.raises(ValueError, match=r"text\.nii\.gz"):
        read_volume(tmp_path / "text.nii.gz")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_an_rgb_nifti_s_colours_are_channels(tmp_path, suffix):
    """An RGB24 NIfTI (a colour histology volume, a diffusion colour-FA map): its
    colours are channels, as a 4D file's volumes. It was read as an array of records,
    which napari cannot show."""
    colours = [(volume(seed=s) * 25).astype(np.uint8) for s in range(3)]
    rgb = np.zeros(colours[0].shape, np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]))
    for name, channel in zip("RGB", colours, strict=True):
        rgb[name] = channel
    array, geometry = read_nifti(save(tmp_path / f"rgb{suffix}", rgb, RAS))
    assert array.dtype == np.uint8
    assert array.shape == (3, 11, 9, 7)
    for c in range(3):
        expected = read_nifti(save(tmp_path / f"c{c}.nii", colours[c], RAS))[0]
        np.testing.assert_array_equal(array[c], expected)
    assert geometry.array_shape == (11, 9, 7)
    with pytest.raises(ValueError, match="RGB NIfTI of 4 axes"):
        read_nifti(save(tmp_path / f"rgb4{suffix}", rgb[..., None], RAS))


def test_a_volume_longer_than_nifti1_can_state_is_written_as_nifti2(tmp_path):
    """NIfTI-1 sizes are int16: a NIfTI-2 input 40000 voxels long (a light-sheet
    scan's width) gives labels that NIfTI-2 holds, with its affine; others stay
    NIfTI-1, which more tools read."""
    long = (np.arange(2 * 40000) % 7).astype(np.uint8).reshape(1, 2, 40000)
    nib.save(nib.Nifti2Image(long.transpose(2, 1, 0), RAS), str(tmp_path / "wide.nii.gz"))
    array, geometry = read_nifti(tmp_path / "wide.nii.gz")
    write_nifti(tmp_path / "wide_labels.nii.gz", array, geometry)
    written = nib.load(tmp_path / "wide_labels.nii.gz")
    assert isinstance(written, nib.Nifti2Image)
    np.testing.assert_allclose(written.affine, RAS)
    np.testing.assert_array_equal(read_nifti(tmp_path / "wide_labels.nii.gz")[0], array)
    small, geometry = read_nifti(save(tmp_path / "a.nii", volume(), RAS))
    write_nifti(tmp_path / "a_labels.nii.gz", small > 100, geometry)
    assert type(nib.load(tmp_path / "a_labels.nii.gz")) is nib.Nifti1Image


def test_labels_of_a_nifti2_volume_are_nifti2(tmp_path):
    """A source's NIfTI version is kept (its tools read NIfTI-2), through the layer too."""
    nib.save(nib.Nifti2Image(volume().transpose(2, 1, 0), RAS), str(tmp_path / "b.nii"))
    array, geometry = read_nifti(tmp_path / "b.nii")
    assert geometry.source == "nifti2"
    again = VolumeGeometry.from_metadata(geometry.to_metadata())  # a napari layer's
    write_nifti(tmp_path / "b_labels.nii.gz", array > 100, again)
    assert type(nib.load(tmp_path / "b_labels.nii.gz")) is nib.Nifti2Image


def test_write_refuses_a_mismatched_array_and_keeps_existing_files(tmp_path):
    array, geometry = read_nifti(save(tmp_path / "a.nii", volume(), RAS))
    with pytest.raises(ValueError, match="does not fit"):
        write_nifti(tmp_path / "x.nii.gz", np.zeros((3, 3, 3), np.uint8), geometry)
    with pytest.raises(ValueError, match=r"\.nii or \.nii\.gz"):
        write_nifti(tmp_path / "x.tif", array, geometry)
    target = tmp_path / "a_labels.nii.gz"
    target.write_bytes(b"hand-made")
    with pytest.raises(FileExistsError):
        write_nifti(target, array > 0, geometry)
    assert target.read_bytes() == b"hand-made"


@pytest.mark.parametrize(
    ("stated", "unit"),
    [("mm", "millimeter"), ("micron", "micrometer"), ("meter", "meter"), ("unknown", "millimeter")],
)
def test_the_header_unit_is_read_and_written_back(tmp_path, stated, unit):
    """A NIfTI of a light-sheet stack in micrometres keeps its unit: labels written
    with "mm" would put the same numbers 1000x larger in the world."""
    image = nib.Nifti1Image(volume(), RAS)
    image.header.set_xyzt_units(stated, "sec")
    nib.save(image, str(tmp_path / "in.nii"))
    array, geometry = read_nifti(tmp_path / "in.nii")
    assert geometry.unit == unit
    assert VolumeGeometry.from_metadata(geometry.to_metadata()).unit == unit
    write_nifti(tmp_path / "out.nii.gz", (array > 100).astype(np.uint8), geometry)
    back = nib.load(tmp_path / "out.nii.gz")
    assert back.header.get_xyzt_units()[0] == ("mm" if stated == "unknown" else stated)
    np.testing.assert_allclose(back.affine, RAS)


@pytest.mark.parametrize("codes", [(1, 1), (0, 4), (2, 0), (0, 0)])
def test_the_form_codes_are_written_back(tmp_path, codes):
    """Labels live in their image's world: an MNI-space (sform code 4) image's labels
    are MNI-space too, not "scanner" (code 1)."""
    image = nib.Nifti1Image(volume(), RAS)
    image.set_qform(RAS, code=codes[0])
    image.set_sform(RAS, code=codes[1])
    nib.save(image, str(tmp_path / "in.nii"))
    source = nib.load(tmp_path / "in.nii")
    array, geometry = read_nifti(tmp_path / "in.nii")
    assert geometry.form_codes == codes
    assert VolumeGeometry.from_metadata(geometry.to_metadata()).form_codes == codes
    write_nifti(tmp_path / "out.nii", (array > 100).astype(np.uint8), geometry)
    back = nib.load(tmp_path / "out.nii")
    assert (int(back.header["qform_code"]), int(back.header["sform_code"])) == codes
    np.testing.assert_allclose(back.affine, source.affine)


def test_metadata_from_before_units_were_kept_reads_as_millimetres_and_scanner(tmp_path):
    _, geometry = read_nifti(save(tmp_path / "a.nii", volume(), RAS))
    meta = geometry.to_metadata()
    del meta["unit"], meta["form_codes"]
    assert VolumeGeometry.from_metadata(meta).unit == "millimeter"
    assert VolumeGeometry.from_metadata(meta).form_codes == (1, 1)
    for bad in ("furlong", ["mm"], None):
        meta["unit"] = bad
        with pytest.raises(ValueError, match="a volume's unit is one of"):
            VolumeGeometry.from_metadata(meta)
    meta["unit"] = "millimeter"
    for bad in ([1], [1, 7], "ab", [1.5, 1], None):
        meta["form_codes"] = bad
        with pytest.raises(ValueError, match="form codes"):
            VolumeGeometry.from_metadata(meta)


@pytest.mark.parametrize(
    ("units", "unit", "spacing"),
    [
        (None, "millimeter", (2.0, 0.5, 0.5)),
        (("pixel",) * 3, "millimeter", (2.0, 0.5, 0.5)),
        (("micrometer",) * 3, "micrometer", (2.0, 0.5, 0.5)),
        (("nanometer",) * 3, "micrometer", (0.002, 0.0005, 0.0005)),
        (("micrometer", "nanometer", "nanometer"), "micrometer", (2.0, 0.0005, 0.0005)),
        (("centimeter",) * 3, "millimeter", (20.0, 5.0, 5.0)),
    ],
)
def test_a_placed_layer_is_written_in_a_unit_nifti_can_state(tmp_path, units, unit, spacing):
    geometry = VolumeGeometry.from_placement((2.0, 0.5, 0.5), (1.0, 2.0, 3.0), (3, 4, 5), units)
    assert geometry.unit == unit
    assert geometry.spacing == pytest.approx(spacing)
    factors = [new / old for new, old in zip(spacing, (2.0, 0.5, 0.5), strict=True)]
    origin = [o * f for o, f in zip((1.0, 2.0, 3.0), factors, strict=True)]
    assert geometry.origin == pytest.approx(origin)
    write_nifti(tmp_path / "p.nii", np.zeros((3, 4, 5), np.uint8), geometry)
    _, again = read_nifti(tmp_path / "p.nii")
    assert again.unit == unit
    assert again.spacing == pytest.approx(spacing)


def test_dicom_series_is_sorted_by_position_and_rescaled(tmp_path, dicom_series):
    vol = volume((6, 10, 12))
    dicom_series(tmp_path / "ct", vol, spacing=(2.5, 0.8, 0.7), origin=(-40.0, -60.0, 12.0))
    array, geometry = read_volume(tmp_path / "ct")
    assert geometry.source == "dicom"
    assert not geometry.oblique
    # DICOM rows/columns run along +y (posterior) and +x (left): already (z, y, x) in LPS
    np.testing.assert_array_equal(array, vol.astype(np.float32) - 1024)
    assert geometry.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert geometry.origin == pytest.approx((12.0, -60.0, -40.0))
    assert label_path(tmp_path, "ct", tmp_path / "ct").name == "ct_labels.nii.gz"
    write_nifti(tmp_path / "ct_labels.nii.gz", (array > -900).astype(np.uint8), geometry)
    back = nib.load(tmp_path / "ct_labels.nii.gz")
    # the NIfTI affine is RAS: the DICOM LPS origin with x and y negated
    np.testing.assert_allclose(back.affine[:3, 3], [40.0, 60.0, 12.0])
    assert nib.aff2axcodes(back.affine) == ("L", "P", "S")


def test_dicom_folder_errors(tmp_path, dicom_series):
    vol = volume((4, 8, 8))
    first = dicom_series(tmp_path / "two", vol, description="T1")
    dicom_series(tmp_path / "two", vol, description="T2", names=[f"B{k}.dcm" for k in range(4)])
    with pytest.raises(ValueError, match=r"2 DICOM series: .*T1.*T2|2 DICOM series: .*T2.*T1"):
        read_dicom(tmp_path / "two")
    array, _ = read_dicom(tmp_path / "two", series=first)
    assert array.shape == (4, 8, 8)
    dicom_series(tmp_path / "gap", vol, names=["a.dcm", "b.dcm", "c.dcm", "d.dcm"])
    (tmp_path / "gap" / "c.dcm").unlink()
    with pytest.raises(ValueError, match="not evenly spaced"):
        read_dicom(tmp_path / "gap")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(
        ValueError, match="is not a NIfTI, NRRD or MetaImage file, nor a folder of DICOM"
    ):
        read_volume(tmp_path / "empty")


@pytest.mark.parametrize(
    "orientation",
    [((0, 1, 0), (0, 0, -1)), ((1, 0, 0), (0, 0, -1)), ((-1, 0, 0), (0, -1, 0))],
    ids=["sagittal", "coronal", "axial-flipped"],
)
def test_a_series_in_any_plane_reads_in_the_stated_axis_order(tmp_path, dicom_series, orientation):
    """A sagittal or coronal MR series (or an axial one stored flipped) reads as
    ``(z, y, x)`` in LPS like an axial one: each voxel's value, a function of its
    patient position when written, matches the position its geometry gives it."""

    def value(lps):  # distinct along each axis of the patient
        return np.round(lps[..., 0] + 7 * lps[..., 1] + 31 * lps[..., 2])

    rows, cols = np.array(orientation, float)
    origin, spacing = np.array([3.0, -2.0, 4.0]), (2.0, 1.5, 1.0)  # slice, row, column
    k, r, c = np.mgrid[0:5, 0:6, 0:8]
    written = (origin + k[..., None] * spacing[0] * np.cross(rows, cols)
               + r[..., None] * spacing[1] * cols + c[..., None] * spacing[2] * rows)  # fmt: skip
    dicom_series(tmp_path / "mr", value(written).astype(np.int16), spacing=spacing,
                 origin=tuple(origin), orientation=orientation, intercept=0.0)  # fmt: skip
    array, geometry = read_volume(tmp_path / "mr")
    z, y, x = np.mgrid[tuple(slice(0, n) for n in array.shape)]
    read = np.stack([geometry.origin[2] + x * geometry.spacing[2],
                     geometry.origin[1] + y * geometry.spacing[1],
                     geometry.origin[0] + z * geometry.spacing[0]], axis=-1)  # fmt: skip
    assert not geometry.oblique
    assert sorted(array.shape) == [5, 6, 8]
    np.testing.assert_array_equal(array, value(read))


def test_a_gantry_tilt_is_read_as_a_stack_and_said(tmp_path, dicom_series, caplog):
    """A tilted CT (slice positions drifting across the slice plane): read as a stack
    along the normal, as ITK reads it, and a warning says how far the last slice lies
    from its recorded position, and napari's reader warns it; an untilted series says
    nothing."""
    import logging

    import pydicom

    vol = volume((6, 10, 12))
    dicom_series(tmp_path / "ct", vol, spacing=(2.5, 0.8, 0.7))
    with caplog.at_level(logging.WARNING, logger="napari_seg.medical"):
        flat, _ = read_dicom(tmp_path / "ct")
    assert not caplog.records
    for path in (tmp_path / "ct").iterdir():  # 20 degrees: 0.91 mm along y per slice
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + (z - 12.0) * np.tan(np.radians(20)), z]
        ds.save_as(path, enforce_file_format=True)
    with caplog.at_level(logging.WARNING, logger="napari_seg.medical"):
        tilted, geometry = read_dicom(tmp_path / "ct")
    np.testing.assert_array_equal(tilted, flat)
    assert geometry.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert "gantry tilt of 20.0 degrees" in caplog.text
    assert "4.5 mm" in caplog.text
    # napari's reader warns it too (napari shows a notification; the log alone it did not)
    from napari_seg._napari_io import read_layers

    for path in (tmp_path / "ct").iterdir():
        path.rename(tmp_path / path.name)  # a folder not read yet: each is said once
    with pytest.warns(UserWarning, match=r"gantry tilt of 20\.0 degrees"):
        [(data, _, kind)] = read_layers(str(tmp_path))
    assert (kind, data.shape) == ("image", flat.shape)


def test_a_file_of_a_series_reads_its_series(tmp_path, dicom_series):
    """A folder of two series (a study exported into one folder) is refused with each
    series and one of its files; given one file, the series it belongs to is read,
    as viewers open a series from a file (the way to choose one on the command line)."""
    import pydicom

    t1, t2 = volume((4, 8, 8)), volume((6, 8, 8), seed=1)
    dicom_series(tmp_path / "two", t1, description="T1", spacing=(2.0, 0.8, 0.7))
    dicom_series(tmp_path / "two", t2, description="T2", names=[f"B{k}.dcm" for k in range(6)])
    with pytest.raises(
        ValueError, match=r"T1 \(4 files, e\.g\. IM\d+\.dcm.*T2 \(6 files, e\.g\. B0"
    ):
        read_volume(tmp_path / "two")
    array, geometry = read_volume(tmp_path / "two" / "B3.dcm")
    np.testing.assert_array_equal(array, t2.astype(np.float32) - 1024)
    array, geometry = read_volume(tmp_path / "two" / "IM0002.dcm")
    np.testing.assert_array_equal(array, t1.astype(np.float32) - 1024)
    assert geometry.spacing == pytest.approx((2.0, 0.8, 0.7))
    assert label_path(tmp_path, "IM0002", tmp_path / "two" / "IM0002.dcm").name == (
        "IM0002_labels.nii.gz"
    )
    scout = pydicom.dcmread(tmp_path / "two" / "B0.dcm")
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.save_as(tmp_path / "two" / "scout.dcm", enforce_file_format=True)
    with pytest.raises(ValueError, match=r"scout\.dcm is no image slice .*a localizer image"):
        read_volume(tmp_path / "two" / "scout.dcm")
    (tmp_path / "two" / "notes.txt").write_text("no image")
    with pytest.raises(ValueError, match="is not a NIfTI, NRRD or MetaImage file, nor a folder"):
        read_volume(tmp_path / "two" / "notes.txt")


def test_a_localizer_in_the_series_folder_is_skipped(tmp_path, dicom_series):
    """A CT export with its scout (ImageType LOCALIZER, a coronal plane) among the
    axial slices of the same series: the volume is read without it; it was refused
    as 'the slices differ in orientation or size'."""
    import pydicom

    vol = volume((5, 10, 12))
    dicom_series(tmp_path / "ct", vol, names=[f"s{k}.dcm" for k in range(5)])
    scout = pydicom.dcmread(tmp_path / "ct" / "s0.dcm")
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    scout.save_as(tmp_path / "ct" / "scout.dcm", enforce_file_format=True)
    array, _ = read_dicom(tmp_path / "ct")
    np.testing.assert_array_equal(array, vol.astype(np.float32) - 1024)
    for k in range(5):
        (tmp_path / "ct" / f"s{k}.dcm").unlink()
    with pytest.raises(ValueError, match=r"only localizers: scout\.dcm"):
        read_dicom(tmp_path / "ct")


def test_a_multi_frame_file_without_frame_positions_is_named_with_what_to_do(
    tmp_path, dicom_series
):
    """A multi-frame file that states no frame's position (no functional groups: a
    cine loop, a secondary capture) is not read as a series; the message says so
    instead of "no slices"."""
    import pydicom

    dicom_series(tmp_path / "mf", volume((1, 8, 8)), names=["volume.dcm"])
    ds = pydicom.dcmread(tmp_path / "mf" / "volume.dcm")
    del ds.ImagePositionPatient, ds.PixelSpacing
    ds.NumberOfFrames = 3
    ds.PixelData = np.zeros((3, 8, 8), np.int16).tobytes()
    ds.save_as(tmp_path / "mf" / "volume.dcm", enforce_file_format=True)
    with pytest.raises(ValueError, match=r"multi-frame DICOM files \(volume\.dcm\).*dcm2niix"):
        read_dicom(tmp_path / "mf")


def mni_dir():
    spec = importlib.util.find_spec("nilearn")
    if spec is None:
        return None
    return pathlib.Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def test_a_header_claiming_a_huge_volume_fails_before_reading(tmp_path):
    import gzip
    import struct

    raw = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), RAS).to_bytes())
    raw[40:48] = struct.pack("<4h", 3, 32767, 32767, 32767)  # dim[0..3]
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match=r"claims \(32767, 32767, 32767\) voxels"):
        read_nifti(tmp_path / "bomb.nii.gz")
    nan = bytearray(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), RAS).to_bytes())
    nan[280:284] = struct.pack("<f", float("nan"))  # srow_x[0]
    (tmp_path / "nan.nii").write_bytes(bytes(nan))
    with pytest.raises(ValueError, match="not a finite 4x4 matrix"):
        read_nifti(tmp_path / "nan.nii")


def test_nanometre_voxels_in_millimetres_are_read_and_collinear_axes_refused(tmp_path):
    """An electron microscopy volume of 4 nm voxels written in mm (4e-6) was refused as
    "degenerate": the test compared the affine's determinant, a volume, with 1e-12."""
    small = np.diag([4e-6, 4e-6, 4e-6, 1.0])
    _, geometry = read_nifti(save(tmp_path / "em.nii.gz", volume(), small))
    assert geometry.spacing == pytest.approx((4e-6, 4e-6, 4e-6), rel=1e-6)
    collinear = RAS.copy()
    collinear[:3, 1] = collinear[:3, 0]  # two axes along x: no volume at any size
    with pytest.raises(ValueError, match="the affine's axes are degenerate"):
        VolumeGeometry.from_affine(collinear, (4, 4, 4))


def test_a_float_segmentation_file_opens_as_labels(tmp_path):
    """FSL and many scripts store segmentations as floats: a ``*_seg`` NIfTI of whole
    numbers opens in napari as a Labels layer of integer ids; fractions stay an image."""
    from napari_seg._napari_io import read_layers

    seg = (volume() % 3).astype(np.float32)
    [(data, _, kind)] = read_layers(str(save(tmp_path / "brain_seg.nii.gz", seg, RAS)))
    assert kind == "labels"
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, read_nifti(tmp_path / "brain_seg.nii.gz")[0])
    [(_, _, kind)] = read_layers(str(save(tmp_path / "prob_seg.nii.gz", seg / 2, RAS)))
    assert kind == "image"
    [(_, _, kind)] = read_layers(str(save(tmp_path / "brain.nii.gz", seg, RAS)))
    assert kind == "image"  # not named as labels


def test_napari_refuses_volumes_it_cannot_show_naming_the_file(tmp_path):
    """A complex NIfTI (some MRI reconstructions save one) and a volume with an empty
    axis were handed to napari, which failed with a bare ``NotImplementedError`` and
    "zero-size array to reduction operation"; the reader now says what is wrong, as
    ``predict`` reads them."""
    from napari_seg._io import read_with_geometry
    from napari_seg._napari_io import read_layers

    phase = save(tmp_path / "phase_seg.nii.gz", volume().astype(np.complex64), RAS)
    empty = save(tmp_path / "empty.nii.gz", np.zeros((4, 0, 6), np.int16), RAS)
    for read in (read_layers, read_with_geometry):
        with pytest.raises(ValueError, match=r"phase_seg.nii.gz holds complex values.*abs"):
            read(str(phase))
        with pytest.raises(ValueError, match=r"empty.nii.gz holds an empty image"):
            read(str(empty))
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match=r"text.npy holds values that are not numbers"):
        read_with_geometry(tmp_path / "text.npy")


def test_label_maps_of_a_decathlon_folder_or_a_label_intent_open_as_labels(tmp_path):
    """labelsTr/la_003.nii.gz (the Medical Segmentation Decathlon's and nnU-Net's
    layout) and a NIfTI whose intent is "label" (as napari-seg writes labels) open as
    Labels layers whatever their names; the images beside them stay images."""
    from napari_seg._napari_io import read_layers

    seg = (volume() % 3).astype(np.uint8)
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTr").mkdir()
    [(_, _, kind)] = read_layers(str(save(tmp_path / "labelsTr" / "la_003.nii.gz", seg, RAS)))
    assert kind == "labels"
    labels = {"0": "background", "1": "left atrium", "2": "scar"}  # the Decathlon's
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": labels}))
    [(_, kwargs, _)] = read_layers(str(tmp_path / "labelsTr" / "la_003.nii.gz"))
    assert kwargs["features"]["class"] == ["background", "left atrium", "scar"]
    assert kwargs["colormap"][0][3] == 0  # the background transparent, as napari-seg's
    assert kwargs["metadata"][BACKGROUND_KEY] == 0
    assert GEOMETRY_KEY in kwargs["metadata"]
    image = tmp_path / "imagesTr" / "la_003_0000.nii.gz"
    [(_, _, kind)] = read_layers(str(save(image, volume(), RAS)))
    assert kind == "image"
    ids, geometry = read_nifti(tmp_path / "labelsTr" / "la_003.nii.gz")  # (z, y, x)
    write_nifti(tmp_path / "brain.nii.gz", ids, geometry)  # a name that says nothing
    assert nib.load(str(tmp_path / "brain.nii.gz")).header.get_intent()[0] == "label"
    [(_, _, kind)] = read_layers(str(tmp_path / "brain.nii.gz"))
    assert kind == "labels"
    write_nifti(tmp_path / "float.nii.gz", ids.astype(np.float32), geometry)
    assert nib.load(str(tmp_path / "float.nii.gz")).header.get_intent()[0] == "none"


def test_label_ids_keep_their_values_in_nifti(tmp_path):
    """The smallest type that holds them; a negative id made int32 (it wrapped to 255),
    one beyond int32 uint32 (it wrapped negative); beyond 32 bits a clear refusal."""
    array, geometry = read_nifti(save(tmp_path / "a.nii", volume(), RAS))
    for values, dtype in [((0, 9), np.uint8), ((0, 300), np.uint16), ((-1, 9), np.int32),
                          ((0, 70000), np.int32), ((0, 2**32 - 1), np.uint32)]:  # fmt: skip
        labels = np.zeros(array.shape, np.int64)
        labels[0, 0, :2] = values
        write_nifti(tmp_path / "l.nii.gz", labels, geometry, overwrite=True)
        assert nib.load(tmp_path / "l.nii.gz").get_data_dtype() == dtype
        np.testing.assert_array_equal(read_nifti(tmp_path / "l.nii.gz")[0], labels)
    labels[0, 0, 0] = -1  # -1 to 2**32 - 1: no 32-bit type holds both
    with pytest.raises(ValueError, match="from -1 to 4294967295 do not fit the 32-bit"):
        write_nifti(tmp_path / "l.nii.gz", labels, geometry, overwrite=True)


def _compress_jpeg_lossless(folder):
    """Re-encode every file of ``folder`` as JPEG Lossless (process 14, SV1) with GDCM,
    as clinical exports often are."""
    import gdcm

    for path in folder.iterdir():
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        assert change.Change()
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()


def test_a_jpeg_lossless_series_reads_as_the_uncompressed_one(tmp_path, dicom_series, monkeypatch):
    """JPEG Lossless needs a decoder pydicom does not carry (python-gdcm, in the medical
    extra); without one the message named the plugins in a line cut at 200 characters
    ('... all plugins are missing dependencies: gdcm -...'), and said nothing of the
    compression or what to install. It now fails at the first slice, naming both."""
    import pydicom
    from pydicom.uid import JPEGLosslessSV1

    vol = volume((4, 10, 12))
    dicom_series(tmp_path / "ct", vol)
    _compress_jpeg_lossless(tmp_path / "ct")
    first = next((tmp_path / "ct").iterdir())
    assert pydicom.dcmread(first).file_meta.TransferSyntaxUID == JPEGLosslessSV1
    array, geometry = read_dicom(tmp_path / "ct")
    dicom_series(tmp_path / "raw", vol)
    expected, expected_geometry = read_dicom(tmp_path / "raw")
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(geometry.affine, expected_geometry.affine)

    from pydicom.pixels.decoders.base import Decoder

    reads = []
    real = pydicom.dataset.Dataset.pixel_array
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array",
                        property(lambda ds: reads.append(1) or real.fget(ds)))  # fmt: skip
    monkeypatch.setattr(Decoder, "is_available", property(lambda _self: False))
    with pytest.raises(ValueError, match=r"compressed as JPEG Lossless.*napari-seg\[medical\]"):
        read_dicom(tmp_path / "ct")
    assert reads == []  # refused before decoding anything


def test_a_compression_pydicom_does_not_know_is_named(tmp_path, dicom_series):
    """A vendor's private compression: no decoder exists; the message says to convert."""
    import pydicom
    from pydicom.encaps import encapsulate

    dicom_series(tmp_path / "ct", volume((2, 8, 8)))
    for path in (tmp_path / "ct").iterdir():
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = "1.3.46.670589.33.1.4.1"  # a vendor's own compression
        ds.PixelData = encapsulate([b"\xff\x0a" + b"\0" * 64])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True, implicit_vr=False, little_endian=True)
    with pytest.raises(
        ValueError, match=r"compressed as transfer syntax 1\.3\.46\.670589\.33\.1\.4\.1.*dcm2niix"
    ):
        read_dicom(tmp_path / "ct")


def test_a_series_without_the_dicom_preamble_reads_as_with_it(tmp_path, dicom_series):
    """Datasets written without the Part 10 preamble and file meta (ACR-NEMA style, as
    some older scanners and PACS export; dcm2niix and ITK read them): the folder was
    not recognised as DICOM at all. A stray file whose first bytes only look like one
    is skipped."""
    import pydicom

    from napari_seg.medical import is_dicom_folder

    vol = volume((4, 10, 12))
    dicom_series(tmp_path / "part10", vol)
    (tmp_path / "bare").mkdir()
    for path in (tmp_path / "part10").iterdir():
        ds = pydicom.dcmread(path)
        del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(tmp_path / "bare" / path.name, ds, implicit_vr=True,
                         little_endian=True, enforce_file_format=False)  # fmt: skip
    assert (tmp_path / "bare" / path.name).read_bytes()[128:132] != b"DICM"
    (tmp_path / "bare" / "notes.bin").write_bytes(b"\x08\x00" + b"\xff" * 40)
    assert is_dicom_folder(tmp_path / "bare")
    array, geometry = read_volume(tmp_path / "bare")
    expected, expected_geometry = read_volume(tmp_path / "part10")
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(geometry.affine, expected_geometry.affine)


def _write_dicomdir(path):
    """A stand-in for a CD export's DICOMDIR: a Part 10 file that is no image."""
    from pydicom.uid import MediaStorageDirectoryStorage

    _write_other_dicom(path, MediaStorageDirectoryStorage, FileSetID="EXPORT")


def _write_other_dicom(path, sop_class, **elements):
    """A Part 10 file of ``sop_class`` with ``elements`` (no image slice)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)


def test_a_2d_dicom_image_is_named_as_such(tmp_path):
    """A chest X-ray (DX: an imager pixel spacing, no slice position) was refused as
    'holds no DICOM image slices'; the message now says it is a 2D image and what to
    do, for its folder and for the file given alone."""
    (tmp_path / "xray").mkdir()
    pixels = np.zeros((16, 12), np.uint16)
    _write_other_dicom(
        tmp_path / "xray" / "chest.dcm", "1.2.840.10008.5.1.4.1.1.1.1", Rows=16, Columns=12,
        SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2", BitsAllocated=16,
        BitsStored=12, HighBit=11, PixelRepresentation=0, ImagerPixelSpacing=[0.14, 0.14],
        PixelData=pixels.tobytes(),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"without a slice position .*\(chest\.dcm\): 2D"):
        read_volume(tmp_path / "xray")
    with pytest.raises(ValueError, match=r"2D images \(X-ray, ultrasound, camera\)"):
        read_volume(tmp_path / "xray" / "chest.dcm")


def test_a_study_with_a_series_per_subfolder_reads_every_series(tmp_path, dicom_series):
    """A CD export (DICOMDIR beside DICOM/PA0/ST0/SE*) or a study folder of series
    folders: napari's File > Open Folder on it found no image slices ('holds no
    DICOM image slices', from the DICOMDIR) or no reader. Every series below is now
    read, a series split over two folders as one; hidden folders, zarr stores and
    folders deeper than DICOM_SEARCH_DEPTH are not searched."""
    from napari_seg.limits import DICOM_SEARCH_DEPTH
    from napari_seg.medical import holds_dicom, read_dicom_series

    t1, t2 = volume((6, 10, 12), seed=1), volume((3, 8, 9), seed=2)
    study = tmp_path / "cd" / "DICOM" / "PA0" / "ST0"
    dicom_series(study / "SE1", t1, spacing=(2.0, 0.5, 0.6), description="T1")
    # One series over two folders (some exports cap a folder's files).
    uid = dicom_series(study / "SE2", t2[:2], spacing=(3.0, 1.0, 1.2), description="T2",
                       names=["A0.dcm", "A1.dcm"])  # fmt: skip
    third = (-40.0, -60.0, 12.0 + 2 * 3.0)  # the fixture's origin, two slices on
    dicom_series(study / "SE3", t2[2:], spacing=(3.0, 1.0, 1.2), description="T2",
                 origin=third, series_uid=uid, names=["B.dcm"])  # fmt: skip
    for skipped in (".hidden", "seg.zarr"):
        dicom_series(tmp_path / "cd" / skipped, t1, description=skipped)
    (tmp_path / "cd" / "seg.zarr" / ".zgroup").write_text("{}")
    _write_dicomdir(tmp_path / "cd" / "DICOMDIR")
    (study / "SE4").mkdir()  # the study's segmentation, exported with it
    _write_other_dicom(study / "SE4" / "seg.dcm", "1.2.840.10008.5.1.4.1.1.66.4", **FRAMES)
    assert holds_dicom(tmp_path / "cd")
    series, skipped, segmentations = read_dicom_series(tmp_path / "cd")
    assert skipped == []
    assert segmentations == [study / "SE4" / "seg.dcm"]  # read as a label map apart
    assert [description for _uid, description, _a, _g in series] == ["T1", "T2"]
    (_, _, a1, g1), (_, _, a2, g2) = series
    np.testing.assert_array_equal(a1, t1 - 1024.0)
    np.testing.assert_array_equal(a2, t2 - 1024.0)
    np.testing.assert_allclose(g1.spacing, (2.0, 0.5, 0.6))
    np.testing.assert_allclose(g2.spacing, (3.0, 1.0, 1.2))
    # Too deep to be searched; a folder of other files and folders holds none.
    deep = tmp_path / "deep"
    dicom_series(deep.joinpath(*"abcde"[: DICOM_SEARCH_DEPTH + 1]), t2)
    assert holds_dicom(deep.joinpath(*"abcde"[:1]))
    assert not holds_dicom(deep)
    (tmp_path / "plain" / "images").mkdir(parents=True)
    (tmp_path / "plain" / "images" / "a.tif").write_bytes(b"II*\0" + b"\0" * 200)
    assert not holds_dicom(tmp_path / "plain")
    assert not holds_dicom(tmp_path / "cd" / "seg.zarr")  # napari asks about zarr stores too


def test_the_search_for_dicom_opens_no_image_file(tmp_path, dicom_series, monkeypatch):
    """napari asks napari-seg about every folder it opens: a tree of TIFF folders was
    searched by reading every file's first bytes. Image files are passed over by
    name; a DICOM folder among them is still found."""
    from napari_seg.medical import _dicom_files, holds_dicom

    for k in range(3):
        (tmp_path / "images" / f"well{k}").mkdir(parents=True)
        for i in range(5):
            (tmp_path / "images" / f"well{k}" / f"img{i}.TIF").write_bytes(b"II*\0" + bytes(60))
    opened = []
    kind = _dicom_files._dicom_header_kind
    monkeypatch.setattr(_dicom_files, "_dicom_header_kind", lambda p: opened.append(p) or kind(p))
    assert not holds_dicom(tmp_path / "images")
    assert opened == []
    dicom_series(tmp_path / "images" / "well1" / "ct", volume((2, 4, 4)))
    assert holds_dicom(tmp_path / "images")
    assert all(p.suffix == ".dcm" for p in opened)


def test_several_series_that_would_not_fit_together_are_refused(
    tmp_path, dicom_series, monkeypatch
):
    """Each series is within the size napari-seg reads at once but all of them are
    not: the folder is refused before any pixels are read, saying to open one."""
    from napari_seg.medical import _dicom, read_dicom_series

    for k in range(3):
        dicom_series(
            tmp_path / "study" / f"SE{k}", volume((4, 16, 16), seed=k), description=f"s{k}"
        )
    monkeypatch.setattr(_dicom, "MAX_VOLUME_BYTES", 2 * 4 * 16 * 16 * 4)
    monkeypatch.setattr(_dicom, "_dicom_pixels", lambda *a: pytest.fail("read pixels"))
    with pytest.raises(ValueError, match=r"holds 3 DICOM series .* open the folder of one"):
        read_dicom_series(tmp_path / "study")


def test_a_command_given_a_cd_export_names_its_series_folders(tmp_path, dicom_series):
    """``napari-seg predict cd/`` (a DICOMDIR beside DICOM/...) said only 'holds no
    DICOM image slices'; it now names the folders below that hold them."""
    for name in ("SE1", "SE2"):
        dicom_series(tmp_path / "cd" / "DICOM" / name, volume((2, 4, 4)), description=name)
    _write_dicomdir(tmp_path / "cd" / "DICOMDIR")
    with pytest.raises(ValueError, match=r"no DICOM image slices .*its subfolders hold DICOM files "
                       r"\(DICOM/SE1, DICOM/SE2\): give one of them"):  # fmt: skip
        read_volume(tmp_path / "cd")


@pytest.mark.parametrize("preamble", [True, False])
def test_a_slice_cut_short_in_its_header_is_named_not_dropped(tmp_path, dicom_series, preamble):
    """A copy interrupted in a slice's header: pydicom returns the elements it read
    without a word, the slice had no position and was skipped as 'no image', and the
    series came back a slice short (its last slice here) without any message. A
    complete image without a position (a secondary capture, as CT dose reports are)
    is still skipped."""
    import pydicom
    from pydicom.uid import SecondaryCaptureImageStorage

    vol = volume((5, 8, 8))
    dicom_series(tmp_path / "ct", vol)
    if not preamble:  # written without the Part 10 preamble and file meta
        for path in (tmp_path / "ct").iterdir():
            ds = pydicom.dcmread(path)
            del ds.file_meta
            ds.preamble = None
            pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True,
                             enforce_file_format=False)  # fmt: skip
    files = sorted((tmp_path / "ct").iterdir())
    top = max(files, key=lambda f: float(pydicom.dcmread(f, force=True).ImagePositionPatient[2]))
    capture = pydicom.dcmread(files[0], force=True)
    capture.SOPClassUID = SecondaryCaptureImageStorage
    del capture.ImagePositionPatient
    capture.save_as(tmp_path / "ct" / "dose_report.dcm")
    assert read_volume(tmp_path / "ct")[0].shape == (5, 8, 8)
    whole = top.read_bytes()
    for cut in (200, 400):
        top.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match=rf"{top.name} ends before its pixel data"):
            read_volume(tmp_path / "ct")


def test_series_without_a_description_are_named_by_number_or_folder(tmp_path, dicom_series):
    """Two series without a SeriesDescription were both named '-' (napari's layers
    'study -' and 'study - [1]'); they are named by their SeriesNumber, else folder."""
    import pydicom

    from napari_seg.medical import read_dicom_series

    for name, number in (("SE7", 7), ("SE9", None)):
        dicom_series(tmp_path / "study" / name, volume((2, 4, 4)), description="")
        for path in (tmp_path / "study" / name).iterdir():
            ds = pydicom.dcmread(path)
            del ds.SeriesDescription
            if number is not None:
                ds.SeriesNumber = number
            ds.save_as(path)
    series, _, _ = read_dicom_series(tmp_path / "study")
    assert sorted(description for _u, description, _a, _g in series) == ["SE9", "series 7"]


def test_a_study_whose_series_all_fail_names_each_reason(tmp_path, dicom_series):
    """Only the first series' reason was given; the user fixing it met the next one."""
    from napari_seg.medical import read_dicom_series

    dicom_series(tmp_path / "study" / "SE1", volume((4, 6, 6)), description="T1",
                 names=["a.dcm", "b.dcm", "c.dcm", "d.dcm"])  # fmt: skip
    (tmp_path / "study" / "SE1" / "c.dcm").unlink()  # a gap
    dicom_series(tmp_path / "study" / "SE2", volume((3, 6, 6)), description="T2",
                 names=["a.dcm", "b.dcm", "c.dcm"])  # fmt: skip
    dicom_series(tmp_path / "study" / "SE2", volume((1, 6, 8)), description="T2",
                 series_uid=_series_uid(tmp_path / "study" / "SE2" / "a.dcm"),
                 origin=(-40.0, -60.0, 30.0), names=["d.dcm"])  # fmt: skip
    with pytest.raises(ValueError, match=r"^none of the 2 DICOM series in") as caught:
        read_dicom_series(tmp_path / "study")
    assert re.search(r"series T1 \(.*not evenly spaced", str(caught.value))
    assert re.search(r"series T2 \(.*differ in orientation or size", str(caught.value))


def _series_uid(path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


#: A multi-frame object with its pixel data (12 frames of 2 x 2, 16 bits).
FRAMES = dict(NumberOfFrames=12, Rows=2, Columns=2, BitsAllocated=16, BitsStored=16,
              HighBit=15, PixelRepresentation=0, SamplesPerPixel=1,
              PhotometricInterpretation="MONOCHROME2", PixelData=b"\0" * 96)  # fmt: skip


@pytest.mark.parametrize(
    ("sop_class", "elements", "expected"),
    [
        (
            "1.2.840.10008.5.1.4.1.1.66.4",
            FRAMES,
            r"a DICOM SEG segmentation, no image series: give the SEG file itself.*\(seg\.dcm\)",
        ),
        (
            "1.2.840.10008.5.1.4.1.1.481.3",
            {"StructureSetLabel": "GTV"},
            r"an RT structure set \(contours, no image series\): give the RTSTRUCT.*\(seg\.dcm\)",
        ),
        (
            "1.2.840.10008.5.1.4.1.1.2",
            FRAMES,
            r"multi-frame DICOM files \(seg\.dcm\).*dcm2niix",
        ),
    ],
    ids=["seg", "rtstruct", "multiframe"],
)
def test_a_segmentation_object_is_named_with_how_to_convert_it(
    tmp_path, sop_class, elements, expected
):
    """Clinical ground truth often comes as DICOM SEG or RTSTRUCT: given as labels, a
    SEG was called 'multi-frame: convert with dcm2niix' (which does not convert SEG)
    and an RTSTRUCT 'no DICOM image slices'."""
    (tmp_path / "gt").mkdir()
    _write_other_dicom(tmp_path / "gt" / "seg.dcm", sop_class, **elements)
    with pytest.raises(ValueError, match=expected):
        read_volume(tmp_path / "gt")


def test_a_subfolder_that_cannot_be_listed_is_passed_over(tmp_path, dicom_series, monkeypatch):
    """A drive's root holds folders its user may not list ("System Volume Information"
    on a Windows-formatted stick): opening the root in napari raised PermissionError
    from the reader's check instead of opening the series beside it."""
    import pathlib

    from napari_seg._napari_io import get_reader, read_layers

    dicom_series(tmp_path / "stick" / "CT", volume((3, 6, 6)), description="CT")
    (tmp_path / "stick" / "System Volume Information").mkdir()
    listing = pathlib.Path.iterdir

    def iterdir(self):
        if self.name == "System Volume Information":
            raise PermissionError(13, "Permission denied", str(self))
        return listing(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    assert get_reader(str(tmp_path / "stick")) is read_layers
    [(data, kwargs, kind)] = read_layers(str(tmp_path / "stick"))
    assert (kind, data.shape, kwargs["name"]) == ("image", (3, 6, 6), "stick")


@pytest.mark.parametrize("tag", ["EchoNumbers", "TemporalPositionIdentifier"])
def test_a_series_of_several_volumes_reads_as_channels(tmp_path, dicom_series, tag):
    """A multi-echo or dynamic MR series repeats every slice position once per volume:
    it was refused ('not evenly spaced ... several volumes in one series'), and napari
    left it out of a study. Its volumes are now channels, ordered by the tag that
    tells them apart (2 before 10), as a 4D NIfTI's are; without such a tag it is
    refused as before."""
    import pydicom

    vols = [volume((4, 6, 7), seed=s) for s in range(3)]
    uid = None
    for k, (value, vol) in enumerate(zip((10, 2, 1), vols, strict=True)):
        uid = dicom_series(
            tmp_path / "mr", vol, series_uid=uid, names=[f"V{k}_{i}.dcm" for i in range(4)]
        )
        for i in range(4):
            path = tmp_path / "mr" / f"V{k}_{i}.dcm"
            ds = pydicom.dcmread(path)
            setattr(ds, tag, value)
            ds.save_as(path)
    array, geometry = read_volume(tmp_path / "mr")
    assert array.shape == (3, 4, 6, 7)
    assert geometry.time_step is None  # no times in the headers
    for channel, k in enumerate((2, 1, 0)):  # by the tag's value: 1, 2, 10
        np.testing.assert_array_equal(array[channel], vols[k] - 1024.0)
    dicom_series(tmp_path / "one", vols[0])  # the first volume alone: the same grid
    np.testing.assert_allclose(geometry.affine, read_volume(tmp_path / "one")[1].affine)
    for path in (tmp_path / "mr").iterdir():  # no tag tells the volumes apart
        ds = pydicom.dcmread(path)
        delattr(ds, tag)
        ds.save_as(path)
    with pytest.raises(ValueError, match="several volumes in one series"):
        read_volume(tmp_path / "mr")


@pytest.mark.parametrize(("unit", "step", "seconds"), [("msec", 40.0, 0.04), ("sec", 2.0, 2.0)])
def test_a_cine_keeps_its_frame_interval(tmp_path, unit, step, seconds):
    """A 4D NIfTI whose header times its volumes (``pixdim[4]`` in ``xyzt_units``' time
    unit): the interval is read (in seconds), kept through a layer's metadata, written
    back with 4D labels (they were written 1 apart, untimed) and as an OME-Zarr
    output's time scale, and napari's layer is scaled by it along its time axis, in
    seconds; an untimed file has none."""
    from napari_seg._napari_io import read_layers

    image = nib.Nifti1Image(np.zeros((6, 5, 4, 10), np.int16), RAS)
    image.header.set_xyzt_units("mm", unit)
    image.header.set_zooms((*image.header.get_zooms()[:3], step))
    nib.save(image, tmp_path / "cine.nii.gz")
    frames, geometry = read_nifti(tmp_path / "cine.nii.gz")
    assert geometry.time_step == pytest.approx(seconds)
    scale, _, units = geometry.placement(4)  # an OME-Zarr output's time axis
    assert (scale[0], units[0]) == (pytest.approx(seconds), "second")
    kept = VolumeGeometry.from_metadata(geometry.to_metadata())
    write_nifti(tmp_path / "cine_labels.nii.gz", (frames > 0).astype(np.uint8), kept)
    written = nib.load(tmp_path / "cine_labels.nii.gz")
    assert written.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_allclose(written.header.get_zooms()[3], seconds, rtol=1e-6)
    [(_, kwargs, _)] = read_layers(str(tmp_path / "cine.nii.gz"))
    assert kwargs["scale"][0] == pytest.approx(seconds)
    if "units" in kwargs:
        assert kwargs["units"][0] == "second"
    untimed = save(tmp_path / "untimed.nii", np.zeros((6, 5, 4, 10)), RAS)
    assert read_nifti(untimed)[1].time_step is None
    for hostile in (-1.0, np.inf, np.nan, 1e30):  # a broken header: untimed
        image.header["pixdim"][4] = hostile
        nib.save(image, tmp_path / "bad.nii.gz")
        assert read_nifti(tmp_path / "bad.nii.gz")[1].time_step is None


def test_a_dicom_cine_is_timed_by_its_trigger_times_and_echoes_are_not():
    """The frame interval of a series' volumes: the median step of their TriggerTime
    (ms) when a temporal tag tells them apart; none for echoes, one volume, or times
    that do not increase."""
    from types import SimpleNamespace

    from napari_seg.medical._time import dicom_time_step

    def series(**tags):
        n = len(next(iter(tags.values())))
        return [[("f", SimpleNamespace(**{k: v[i] for k, v in tags.items()}))] for i in range(n)]

    phases = [0.0, 35.0, 70.0, 105.5, 140.0]
    assert dicom_time_step(series(TriggerTime=phases)) == pytest.approx(0.035)
    ids = list(range(1, 6))
    times = ["090000", "090003.5", "090007", "090010.5", "090014"]
    step = dicom_time_step(series(TemporalPositionIdentifier=ids, AcquisitionTime=times))
    assert step == pytest.approx(3.5)
    assert dicom_time_step(series(EchoNumbers=ids, AcquisitionTime=times)) is None  # echoes
    assert dicom_time_step(series(TriggerTime=phases[::-1])) is None
    assert dicom_time_step(series(TriggerTime=[10.0])) is None


def test_a_dynamic_series_of_many_time_points_is_read(tmp_path, dicom_series):
    """A dynamic (perfusion) series of 70 time points at the same positions was
    refused ('napari-seg reads them as channels (at most 64)'); it is read, in the
    order of its time points, timed by its acquisition times, and napari opens it as
    one layer over them."""
    import pydicom

    from napari_seg._napari_io import read_layers

    count, uid = 70, None
    for t in range(count):
        names = [f"T{t}_{k}.dcm" for k in range(2)]
        uid = dicom_series(tmp_path / "dce", volume((2, 3, 4), seed=t), series_uid=uid,
                           names=names)  # fmt: skip
        for name in names:
            ds = pydicom.dcmread(tmp_path / "dce" / name)
            ds.TemporalPositionIdentifier = t + 1
            minutes, seconds = divmod(2 * t, 60)  # every 2 s from 10:15:00.25
            ds.AcquisitionTime = f"10{15 + minutes:02d}{seconds:02d}.250000"
            ds.save_as(tmp_path / "dce" / name)
    array, geometry = read_volume(tmp_path / "dce")
    assert array.shape == (count, 2, 3, 4)
    assert geometry.time_step == pytest.approx(2.0)  # its frame interval, in seconds
    np.testing.assert_array_equal(array[64], volume((2, 3, 4), seed=64) - 1024.0)
    [(layer, _, kind)] = read_layers(str(tmp_path / "dce"))
    assert (kind, layer.shape) == ("image", (count, 2, 3, 4))


def test_volumes_of_a_series_rescaled_apart_keep_their_values(tmp_path, dicom_series):
    """The first echo stored as it is (int16), the second rescaled (float32): the
    channels are float32 and neither is cut to the first one's type."""
    import pydicom

    uid = None
    for echo, intercept in ((1, 0.0), (2, -0.5)):
        names = [f"E{echo}_{k}.dcm" for k in range(3)]
        uid = dicom_series(tmp_path / "mr", volume((3, 4, 5), seed=echo), series_uid=uid,
                           intercept=intercept, names=names)  # fmt: skip
        for name in names:
            ds = pydicom.dcmread(tmp_path / "mr" / name)
            ds.EchoNumbers = echo
            ds.save_as(tmp_path / "mr" / name)
    array, _ = read_volume(tmp_path / "mr")
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array[0], volume((3, 4, 5), seed=1))
    np.testing.assert_array_equal(array[1], volume((3, 4, 5), seed=2) - 0.5)


def test_an_enhanced_multi_frame_image_reads_as_its_single_frame_series(
    tmp_path, dicom_series, enhanced_dicom
):
    """Scanners export a series as one Enhanced MR/CT file, its frames placed by
    functional groups: it was refused ('multi-frame DICOM files ... convert them to
    NIfTI first'). Its frames are slices, sorted by position (here stored out of
    order), rescaled, on the grid the same slices as single-frame files have; a
    multi-echo file's frames are channels, by echo time."""
    vol = volume((5, 6, 7), seed=3)
    spacing, origin = (2.5, 0.8, 0.7), (-40.0, -60.0, 12.0)  # the fixture's
    order = [3, 0, 4, 1, 2]
    positions = [(origin[0], origin[1], origin[2] + z * spacing[0]) for z in order]
    (tmp_path / "enhanced").mkdir()
    enhanced_dicom(tmp_path / "enhanced" / "IM1", vol[order], positions, spacing=spacing)
    dicom_series(tmp_path / "single", vol, spacing=spacing, origin=origin)
    array, geometry = read_volume(tmp_path / "enhanced")
    expected, single = read_volume(tmp_path / "single")
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(geometry.affine, single.affine)
    # A series of one-frame enhanced files (as some exports write them).
    (tmp_path / "frames").mkdir()
    for z in range(5):
        enhanced_dicom(tmp_path / "frames" / f"IM{z}", vol[z : z + 1], [positions[order.index(z)]],
                        spacing=spacing, series_uid="1.2.3.4")  # fmt: skip
    np.testing.assert_array_equal(read_volume(tmp_path / "frames")[0], expected)
    # Two echoes, their frames interleaved: channels in echo-time order.
    echoes = np.concatenate([vol, vol[:, ::-1]])
    times = [30.0] * 5 + [10.0] * 5
    where = [(origin[0], origin[1], origin[2] + z * spacing[0]) for z in range(5)] * 2
    interleave = [k for pair in zip(range(5), range(5, 10), strict=True) for k in pair]
    (tmp_path / "echoes").mkdir()
    enhanced_dicom(tmp_path / "echoes" / "IM1", echoes[interleave],
                    [where[k] for k in interleave], spacing=spacing,
                    echo_times=[times[k] for k in interleave])  # fmt: skip
    both, _ = read_volume(tmp_path / "echoes")
    assert both.shape == (2, 5, 6, 7)
    np.testing.assert_array_equal(both[0], read_volume(tmp_path / "single")[0][:, ::-1])
    np.testing.assert_array_equal(both[1], expected)


def test_a_ct_keeps_its_hounsfield_units_in_whole_numbers(tmp_path, dicom_series):
    """A CT's rescale (slope 1, intercept -1024) made every series float32: twice the
    memory of the int16 that 3D Slicer and dcm2niix keep. Whole-number rescales now
    stay whole numbers (int16, or int32 where the values need it); a fractional slope
    (an MR's, a PET's) gives float32 as before. The values are the same."""
    import pydicom

    stored = np.random.default_rng(0).integers(0, 3000, (3, 8, 9)).astype(np.int16)
    dicom_series(tmp_path / "ct", stored)
    ct, _ = read_volume(tmp_path / "ct")
    assert ct.dtype == np.int16
    np.testing.assert_array_equal(ct, stored.astype(np.int32) - 1024)
    for slope, kind in (("30", np.int32), ("0.5", np.float32)):
        folder = tmp_path / f"slope{slope}"
        dicom_series(folder, stored, intercept=-1024.0)
        for path in folder.iterdir():
            ds = pydicom.dcmread(path)
            ds.RescaleSlope = slope
            ds.save_as(path)
        read, _ = read_volume(folder)
        assert read.dtype == kind
        np.testing.assert_allclose(read, stored * float(slope) - 1024)


def test_napari_opens_a_volume_in_the_window_its_file_states(
    tmp_path, dicom_series, enhanced_dicom
):
    """A CT opened in napari spanned the whole range of its values (-1024 to 3000 HU:
    soft tissue a flat grey). It now opens in the window its files state: a DICOM
    series' first WindowCenter/WindowWidth (centre -/+ half the width, as 3D Slicer
    shows it), an enhanced image's shared frame VOI LUT, a NIfTI's cal_min/cal_max;
    without one (or with an empty range), napari's own choice."""
    import pydicom
    from pydicom.dataset import Dataset

    from napari_seg._napari_io import read_layers

    def limits(path):
        [(_, kwargs, kind)] = read_layers(str(path))
        assert kind == "image"
        return kwargs.get("contrast_limits")

    dicom_series(tmp_path / "ct", volume((3, 6, 6)))
    assert limits(tmp_path / "ct") is None
    for path in (tmp_path / "ct").iterdir():
        ds = pydicom.dcmread(path)
        ds.WindowCenter, ds.WindowWidth = [40, 400], [400, 1800]  # soft tissue, then bone
        ds.save_as(path)
    assert limits(tmp_path / "ct") == (-160.0, 240.0)
    (tmp_path / "mr").mkdir()
    enhanced_dicom(tmp_path / "mr" / "IM1", volume((3, 6, 6)), [(0.0, 0.0, 2.5 * z) for z in
                   range(3)], spacing=(2.5, 0.8, 0.7))  # fmt: skip
    ds = pydicom.dcmread(tmp_path / "mr" / "IM1")
    window = Dataset()
    window.WindowCenter, window.WindowWidth = 300, 500
    ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence = [window]
    ds.save_as(tmp_path / "mr" / "IM1")
    assert limits(tmp_path / "mr") == (50.0, 550.0)
    for low, high, expected in ((10.0, 90.0, (10.0, 90.0)), (0.0, 0.0, None)):
        image = nib.Nifti1Image(volume(), RAS)
        image.header["cal_min"], image.header["cal_max"] = low, high
        nib.save(image, str(tmp_path / "t1.nii.gz"))
        assert limits(tmp_path / "t1.nii.gz") == expected


@pytest.mark.parametrize(
    ("stored", "slope", "intercept", "kind"),
    [
        (np.array([0, 3000], np.uint16), 1.0, -1024.0, np.int16),  # a CT stored unsigned
        (np.array([0, 40000], np.uint16), 1.0, -1024.0, np.int32),  # beyond int16
        (np.array([-32768, 32767], np.int16), 1.0, 100.0, np.int32),  # overflows int16
        (np.array([-5, 5], np.int16), -1.0, 0.0, np.int16),  # a negative slope
        (np.array([0, 2**31 - 1], np.int64), 3.0, 0.0, np.float32),  # beyond int32
        (np.array([0, 7], np.uint8), 1.0, 0.0, np.uint8),  # nothing to do: as stored
    ],
)
def test_rescaled_values_are_exact_whole_numbers_where_they_fit(stored, slope, intercept, kind):
    """The one rule of both readers: the rescaled values are right, in the narrowest of
    int16 and int32 that holds them (never wrapped round), else float32."""
    from napari_seg.medical._rescale import rescaled

    out = rescaled(stored, slope, intercept)
    assert out.dtype == kind
    np.testing.assert_allclose(out, stored.astype(np.float64) * slope + intercept, rtol=1e-6)


def test_napari_saves_an_image_layer_as_a_medical_volume(tmp_path, dicom_series):
    """File > Save Layers had no writer for an Image layer as NIfTI, NRRD or MetaImage
    (a DICOM series saved as NIfTI, as dcm2niix would). It writes the layer's values as
    they are (a CT's int16 Hounsfield units; no label intent, which would reopen it as
    labels) on the grid it was read with, and the file reopens as the same image."""
    from napari_seg._napari_io import read_layers
    from napari_seg._napari_write import (
        write_metaimage_image,
        write_nifti_image,
        write_nrrd_image,
    )

    stored = np.random.default_rng(0).integers(0, 3000, (4, 9, 11)).astype(np.int16)
    dicom_series(tmp_path / "ct", stored)
    [(ct, kwargs, kind)] = read_layers(str(tmp_path / "ct"))
    assert (kind, ct.dtype) == ("image", np.int16)
    for write, name in ((write_nifti_image, "ct"), (write_nrrd_image, "ct.nrrd"),
                        (write_metaimage_image, "ct.mha")):  # fmt: skip
        [saved] = write(str(tmp_path / name), ct, kwargs)
        [(data, again, kind)] = read_layers(saved)
        assert (kind, data.dtype) == ("image", np.int16), saved
        np.testing.assert_array_equal(data, ct)
        np.testing.assert_allclose(again["scale"], kwargs["scale"])
        np.testing.assert_allclose(again["translate"], kwargs["translate"])
    header = nib.load(tmp_path / "ct.nii.gz").header
    assert header.get_data_dtype() == np.int16
    assert header.get_intent()[0] != "label"
    # a layer of no medical file: placed by its scale and translate, its floats kept
    image = np.random.default_rng(1).random((3, 5, 6))
    placed = {"scale": (2.0, 0.5, 0.5), "translate": (1.0, 2.0, 3.0)}
    [saved] = write_nifti_image(str(tmp_path / "plain.nii"), image, placed)
    [(data, again, _)] = read_layers(saved)
    assert data.dtype == np.float64
    np.testing.assert_array_equal(data, image)
    np.testing.assert_allclose(again["scale"], (2.0, 0.5, 0.5))


def test_napari_saves_a_2d_layer_as_one_slice(tmp_path):
    """A 2D Labels or Image layer (an X-ray, a slice drawn on a PNG) was refused as
    NIfTI, NRRD and MetaImage ("a medical volume is a 3D layer"), though these formats
    hold 2D images as one slice, as nnU-Net's 2D datasets do. It is saved so, placed as
    napari shows it: each pixel's centre where the layer's scale, rotation and
    translate put it, and it reopens as that slice."""
    from napari_seg._napari_io import read_layers
    from napari_seg._napari_write import (
        write_metaimage_labels,
        write_nifti_image,
        write_nifti_labels,
        write_nrrd_labels,
    )

    labels = np.random.default_rng(0).integers(0, 3, (7, 9)).astype(np.uint8)
    angle = np.deg2rad(30)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    meta = {"scale": (0.5, 2.0), "translate": (10.0, 20.0), "rotate": rotate,
            "units": ("micrometer", "micrometer")}  # fmt: skip
    [saved] = write_nifti_labels(str(tmp_path / "xray"), labels, meta)
    loaded = nib.load(saved)
    assert loaded.shape == (9, 7, 1)  # NIfTI's (x, y, z)
    np.testing.assert_array_equal(np.asarray(loaded.dataobj)[..., 0].T, labels)
    assert loaded.header.get_xyzt_units()[0] == "micron"
    for r, c in ((0, 0), (6, 0), (0, 8), (3, 5)):
        world_y, world_x = rotate @ (0.5 * r, 2.0 * c) + (10.0, 20.0)  # napari's (y, x)
        ras = loaded.affine @ (c, r, 0, 1)
        np.testing.assert_allclose(ras[:3], (-world_x, -world_y, 0.0), atol=1e-4)
    [(data, kwargs, kind)] = read_layers(saved)
    assert kind == "labels"
    np.testing.assert_array_equal(data, labels[np.newaxis])
    plain = {"scale": (0.5, 2.0), "translate": (10.0, 20.0)}
    for write, name in ((write_nrrd_labels, "xray_labels.nrrd"),
                        (write_metaimage_labels, "xray_labels.mha")):  # fmt: skip
        [saved] = write(str(tmp_path / name), labels, plain)
        [(data, kwargs, kind)] = read_layers(saved)
        assert kind == "labels", name
        np.testing.assert_array_equal(data, labels[np.newaxis])
        np.testing.assert_allclose(kwargs["scale"][1:], (0.5, 2.0))
        np.testing.assert_allclose(kwargs["translate"][1:], (10.0, 20.0))
    image = np.random.default_rng(1).random((7, 9)).astype(np.float32)
    [saved] = write_nifti_image(str(tmp_path / "photo.nii"), image, plain)
    [(data, kwargs, kind)] = read_layers(saved)
    assert kind == "image"
    np.testing.assert_array_equal(data, image[np.newaxis])
