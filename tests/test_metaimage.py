"""MetaImage volumes (ITK's .mha/.mhd): read as the NIfTI of the same voxels would be."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_seg.medical import read_volume


def voxels(shape=(7, 6, 5), seed=0):
    """Voxels in file order ``(i, j, k)``."""
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.int16)


def write(path, data, *, spacing=(0.5, 0.6, 2.0), origin=(10.0, 20.0, 30.0), direction=None):
    """``data`` (i, j, k[, c]) as ITK stores it: LPS origin, spacing and direction."""
    array = data.transpose(2, 1, 0, *range(3, data.ndim))
    image = sitk.GetImageFromArray(array, isVector=data.ndim == 4)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, float).ravel()))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.diag([-1.0, 1.0, 1.0]), np.array([[0, 1.0, 0], [1.0, 0, 0], [0, 0, -1.0]])],
)
def test_a_volume_reads_as_the_nifti_of_the_same_voxels(tmp_path, direction):
    data = voxels()
    array, geometry = read_volume(write(tmp_path / "ct.mha", data, direction=direction))
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag([0.5, 0.6, 2.0])
    lps[:3, 3] = [10.0, 20.0, 30.0]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    nib.save(nib.Nifti1Image(data, ras), tmp_path / "ct.nii.gz")
    expected, reference = read_volume(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(geometry.affine, ras)
    assert geometry.spacing == pytest.approx(reference.spacing)
    assert geometry.origin == pytest.approx(reference.origin)
    assert (geometry.unit, geometry.source) == ("millimeter", "metaimage")


def test_a_header_with_its_data_file_and_a_vector_volume(tmp_path):
    data = voxels(seed=1)
    write(tmp_path / "mr.mhd", data)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".mhd", ".zraw"]
    np.testing.assert_array_equal(
        read_volume(tmp_path / "mr.mhd")[0], read_volume(write(tmp_path / "mr.mha", data))[0]
    )
    vectors = np.stack([voxels(seed=s) for s in range(3)], axis=-1)  # (i, j, k, c)
    array, _ = read_volume(write(tmp_path / "flow.mha", vectors))
    assert array.shape == (3, 5, 6, 7)
    for c in range(3):
        one, _ = read_volume(write(tmp_path / f"{c}.mha", vectors[..., c]))
        np.testing.assert_array_equal(array[c], one)


def test_files_napari_seg_does_not_read_are_named(tmp_path):
    image = sitk.GetImageFromArray(voxels()[0])
    sitk.WriteImage(image, str(tmp_path / "slice.mha"))
    with pytest.raises(ValueError, match=r"slice.mha is a 2D MetaImage of size \(5, 6\)"):
        read_volume(tmp_path / "slice.mha")
    header = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n"
    for name, content, why in [
        ("text.mha", "not a MetaImage", "its header does not state NDims"),
        ("cut.mha", header + "ElementDataFile = LOCAL\n12", r"its voxel data is cut short"),
    ]:
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=rf"cannot read .*{name} as MetaImage: {why}"):
            read_volume(tmp_path / name)
    (tmp_path / "huge.mha").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\n"
        "ElementType = MET_DOUBLE\nElementDataFile = LOCAL\n"
    )
    with pytest.raises(ValueError, match=r"header claims .* more than the"):
        read_volume(tmp_path / "huge.mha")


def test_napari_opens_it_placed_and_a_label_map_as_labels(tmp_path):
    from napari_seg._napari_io import get_reader

    path = str(write(tmp_path / "case.mha", voxels()))
    [(_, kwargs, kind)] = get_reader(path)(path)
    assert (kind, kwargs["name"]) == ("image", "case")
    assert kwargs["scale"] == pytest.approx((2.0, 0.6, 0.5))
    assert kwargs["translate"] == pytest.approx((30.0, 20.0, 10.0))
    labels = str(write(tmp_path / "case_seg.mha", (voxels() % 3).astype(np.uint8)))
    [(data, _, kind)] = get_reader(labels)(labels)
    assert kind == "labels"
    assert set(np.unique(data).tolist()) == {0, 1, 2}


def test_labels_are_written_back_on_the_grid_of_any_source(tmp_path, oblique_volume):
    """An oblique NIfTI in micrometres: the .mha written (as ITK reads it) has the
    same voxels, LPS direction and origin, its lengths in millimetres (MetaImage
    states no unit); probabilities are its components; a .mhd is refused."""
    from napari_seg.medical import write_volume

    array, geometry, ras = oblique_volume
    labels = (array % 3).astype(np.int64)
    write_volume(tmp_path / "obl_labels.mha", labels, geometry)
    out = sitk.ReadImage(str(tmp_path / "obl_labels.mha"))
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    np.testing.assert_allclose(out.GetSpacing(), np.array([0.5, 0.6, 2.0]) / 1000)
    np.testing.assert_allclose(
        np.reshape(out.GetDirection(), (3, 3)), lps[:3, :3] / [0.5, 0.6, 2.0]
    )
    np.testing.assert_allclose(out.GetOrigin(), lps[:3, 3] / 1000)
    stored = sitk.GetArrayFromImage(out)  # (k, j, i)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored.T, geometry.to_file(labels))
    probabilities = np.stack([labels == c for c in range(3)]).astype(np.float32)
    write_volume(tmp_path / "obl_probabilities.mha", probabilities, geometry)
    back, placed = read_volume(tmp_path / "obl_probabilities.mha")
    np.testing.assert_array_equal(back, probabilities)
    millimetres = ras.copy()
    millimetres[:3] /= 1000
    np.testing.assert_allclose(placed.affine, millimetres)
    assert placed.unit == "millimeter"
    with pytest.raises(ValueError, match=r"one \.mha file"):
        write_volume(tmp_path / "obl_labels.mhd", labels, geometry)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "obl.nii.gz",
        "obl_labels.mha",
        "obl_probabilities.mha",
    ]


def test_a_header_whose_data_file_is_missing_or_no_file_is_refused(tmp_path):
    """A data file that is a pipe (ITK's reader blocked on it), a folder or missing: a
    message naming it, before ITK opens it."""
    import os

    write(tmp_path / "ok.mhd", voxels())
    header = (tmp_path / "ok.mhd").read_text()
    data_file = next(p.name for p in tmp_path.iterdir() if p.suffix != ".mhd")
    os.mkfifo(tmp_path / "pipe.raw")
    (tmp_path / "folder.raw").mkdir()
    for name, said in [("pipe.raw", "is not a regular file"), ("folder.raw", "is not a regular"),
                       ("gone.raw", "is missing")]:  # fmt: skip
        (tmp_path / "v.mhd").write_text(header.replace(data_file, name))
        with pytest.raises(ValueError, match=f"v.mhd: its data file '{name}' {said}"):
            read_volume(tmp_path / "v.mhd")
    (tmp_path / "v.mhd").write_text(header.replace(data_file, str(tmp_path / data_file)))
    np.testing.assert_array_equal(
        read_volume(tmp_path / "v.mhd")[0], read_volume(tmp_path / "ok.mhd")[0]
    )


@pytest.mark.parametrize("name", ["raw.mha", "zipped.mha", "zipped.mhd"])
def test_voxel_data_cut_short_is_named_before_itk_reads_it(tmp_path, capfd, name):
    """An interrupted copy (half the voxel data): the message says so (ITK said the
    file "cannot be read" and printed its complaint on the console)."""
    data = voxels((20, 30, 40))
    image = sitk.GetImageFromArray(data.T.copy())
    sitk.WriteImage(image, str(tmp_path / name), useCompression=name.startswith("zipped"))
    target = max(tmp_path.iterdir(), key=lambda p: p.stat().st_size)  # the voxels' file
    whole = target.read_bytes()
    target.write_bytes(whole[: len(whole) // 2 if target.suffix != ".mha" else -len(whole) // 3])
    with pytest.raises(ValueError, match=r"its voxel data is cut short \(\d+ of \d+ bytes\)"):
        read_volume(tmp_path / name)
    assert "MetaImage" not in capfd.readouterr().err


def test_text_voxel_data_is_read(tmp_path):
    """``BinaryData = False`` (values as text) is left to ITK, not measured as bytes."""
    (tmp_path / "text.mha").write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 2 2 2\n"
        "ElementType = MET_DOUBLE\nElementDataFile = LOCAL\n1 2 3 4 5 6 7 8\n"
    )
    array, _ = read_volume(tmp_path / "text.mha")
    assert sorted(array.ravel().tolist()) == [1, 2, 3, 4, 5, 6, 7, 8]
