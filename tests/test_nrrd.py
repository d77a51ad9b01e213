"""NRRD volumes (3D Slicer's format): read as the NIfTI of the same voxels would be."""

import nibabel as nib
import nrrd
import numpy as np
import pytest

from napari_seg.medical import read_volume

#: Voxel (i, j, k) to RAS: voxel sizes 0.5, 0.6 and 2.0 along L, P and S.
RAS = np.array([[-0.5, 0, 0, -10.0], [0, -0.6, 0, -20.0], [0, 0, 2.0, 30.0], [0, 0, 0, 1]])
#: The same placement, as each NRRD space states it: directions (rows) and origin.
SPACES = {
    "left-posterior-superior": (np.diag([0.5, 0.6, 2.0]), [10.0, 20.0, 30.0]),
    "RAS": (np.diag([-0.5, -0.6, 2.0]), [-10.0, -20.0, 30.0]),
    "left-anterior-superior": (np.diag([0.5, -0.6, 2.0]), [10.0, -20.0, 30.0]),
}


def voxels(shape=(7, 6, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 1000, shape).astype(np.int16)


def write(path, data, space="left-posterior-superior", **fields):
    directions, origin = SPACES[space]
    header = {"space": space, "space directions": directions, "space origin": np.array(origin)}
    nrrd.write(str(path), data, {**header, **fields})
    return path


@pytest.mark.parametrize("space", list(SPACES))
def test_a_volume_reads_as_the_nifti_of_the_same_voxels(tmp_path, space):
    data = voxels()
    array, geometry = read_volume(write(tmp_path / "ct.nrrd", data, space))
    nib.save(nib.Nifti1Image(data, RAS), tmp_path / "ct.nii.gz")
    expected, reference = read_volume(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(array, expected)
    np.testing.assert_allclose(geometry.affine, RAS)
    assert geometry.spacing == pytest.approx((2.0, 0.6, 0.5))
    assert geometry.origin == pytest.approx(reference.origin)  # LPS (z, y, x): 30, 20, 10
    assert (geometry.unit, geometry.source, geometry.oblique) == ("millimeter", "nrrd", False)


def test_a_detached_header_reads_its_data_file(tmp_path):
    data = voxels(seed=1)
    write(tmp_path / "mr.nhdr", data, detached_header=True)
    assert any(p.name != "mr.nhdr" for p in tmp_path.iterdir())  # the data file beside it
    array, _ = read_volume(tmp_path / "mr.nhdr")
    np.testing.assert_array_equal(array, read_volume(write(tmp_path / "mr.nrrd", data))[0])


def test_an_axis_of_components_is_the_channel_axis(tmp_path):
    data = np.stack([voxels(seed=s) for s in range(3)])  # (c, i, j, k): components fastest
    directions = np.vstack([np.full(3, np.nan), SPACES["RAS"][0]])
    header = {"space": "RAS", "space directions": directions, "kinds": ["vector", *["domain"] * 3]}
    nrrd.write(str(tmp_path / "dti.nrrd"), data, header)
    array, _ = read_volume(tmp_path / "dti.nrrd")
    assert array.shape == (3, 5, 6, 7)
    for c in range(3):
        nib.save(nib.Nifti1Image(data[c], RAS), tmp_path / f"c{c}.nii.gz")
        np.testing.assert_array_equal(array[c], read_volume(tmp_path / f"c{c}.nii.gz")[0])


def test_units_and_a_header_with_spacings_only(tmp_path):
    _, geometry = read_volume(write(tmp_path / "um.nrrd", voxels(), **{"space units": ["um"] * 3}))
    assert geometry.unit == "micrometer"
    nrrd.write(str(tmp_path / "plain.nrrd"), voxels(), {"spacings": [0.5, 0.6, 2.0]})
    array, geometry = read_volume(tmp_path / "plain.nrrd")
    assert array.shape == (5, 6, 7)
    assert geometry.spacing == pytest.approx((2.0, 0.6, 0.5))
    assert geometry.origin == pytest.approx((0.0, 0.0, 0.0))


def test_files_napari_seg_does_not_read_are_named(tmp_path):
    nrrd.write(str(tmp_path / "slice.nrrd"), voxels()[0], {"spacings": [1.0, 1.0]})
    with pytest.raises(ValueError, match=r"slice.nrrd is an NRRD file of sizes \[6, 5\] with 2"):
        read_volume(tmp_path / "slice.nrrd")
    for name, content in [
        ("text.nrrd", b"not an NRRD file"),
        ("cut.nrrd", b"NRRD0004\ntype: int16\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n\n12"),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"cannot read .*{name}"):
            read_volume(tmp_path / name)
    (tmp_path / "huge.nrrd").write_bytes(
        b"NRRD0004\ntype: double\ndimension: 3\nsizes: 100000 100000 100000\n"
        b"encoding: raw\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nspace: RAS\n\n"
    )
    with pytest.raises(ValueError, match=r"header claims .* more than the"):
        read_volume(tmp_path / "huge.nrrd")


def test_a_slicer_segmentation_opens_as_labels_named_by_its_segments(tmp_path):
    from napari_seg._napari_io import get_reader

    labels = np.zeros((7, 6, 5), np.uint8)
    labels[1:3, 1:4, 2:5], labels[4:, :2] = 1, 3
    segments = {
        "Segment0_Name": "liver", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
        "Segment0_Color": "0.9 0.1 0.1", "Segment1_Name": "tumour",
        "Segment1_LabelValue": "3", "Segment1_Layer": "0", "Segment1_Color": "0.1 0.8 0.2",
    }  # fmt: skip
    path = str(write(tmp_path / "case.seg.nrrd", labels, **segments))
    [(data, kwargs, kind)] = get_reader(path)(path)
    assert kind == "labels"
    np.testing.assert_array_equal(data, read_volume(path)[0])
    assert kwargs["features"]["class"] == ["background", "liver", "class 2", "tumour"]
    assert kwargs["colormap"][1] == (0.9, 0.1, 0.1, 1.0)
    assert kwargs["scale"] == pytest.approx((2.0, 0.6, 0.5))
    image = str(write(tmp_path / "case.nrrd", voxels()))
    [(_, kwargs, kind)] = get_reader(image)(image)
    assert (kind, kwargs["name"]) == ("image", "case")


def test_labels_are_written_back_on_the_grid_of_any_source(tmp_path, oblique_volume):
    """An oblique NIfTI in micrometres: the NRRD written (as pynrrd reads it) has the
    same voxels in file order, LPS directions and origin and its unit; ids keep
    their values; a detached header is refused and an existing file kept."""
    from napari_seg.medical import write_volume

    array, geometry, ras = oblique_volume
    labels = (array % 3).astype(np.int64)
    labels[0, 0, 0] = 300  # needs uint16
    write_volume(tmp_path / "obl_labels.nrrd", labels, geometry)
    data, header = nrrd.read(str(tmp_path / "obl_labels.nrrd"))
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data, geometry.to_file(labels))  # (i, j, k): the source's
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    np.testing.assert_allclose(header["space directions"], lps[:3, :3].T)  # a row per axis
    np.testing.assert_allclose(header["space origin"], lps[:3, 3])
    assert header["space units"] == ["um"] * 3
    back, placed = read_volume(tmp_path / "obl_labels.nrrd")
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_allclose(placed.affine, ras)
    assert (placed.unit, placed.oblique) == ("micrometer", True)
    with pytest.raises(ValueError, match=r"one \.nrrd file"):
        write_volume(tmp_path / "obl_labels.nhdr", labels, geometry)
    with pytest.raises(FileExistsError):
        write_volume(tmp_path / "obl_labels.nrrd", labels * 0, geometry)
    np.testing.assert_array_equal(read_volume(tmp_path / "obl_labels.nrrd")[0], labels)


def test_a_detached_header_whose_data_file_is_missing_or_no_file_is_refused(tmp_path):
    """A data file that is a pipe (it blocked the reader until something wrote to it),
    a folder or missing: a message naming it."""
    import os

    header = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndata file: {}\n\n"
    os.mkfifo(tmp_path / "pipe.raw")
    (tmp_path / "folder.raw").mkdir()
    for name, said in [("pipe.raw", "is not a regular file"), ("folder.raw", "is not a regular"),
                       ("gone.raw", "is missing")]:  # fmt: skip
        (tmp_path / "v.nhdr").write_text(header.format(name))
        with pytest.raises(ValueError, match=f"v.nhdr: its data file '{name}' {said}"):
            read_volume(tmp_path / "v.nhdr")
    (tmp_path / "ok.raw").write_bytes(bytes(range(64)))
    (tmp_path / "v.nhdr").write_text(header.format(tmp_path / "ok.raw"))  # absolute: read
    assert read_volume(tmp_path / "v.nhdr")[0].sum() == sum(range(64))


def test_a_segmentation_whose_segments_overlap_is_one_label_map(tmp_path):
    """Slicer stores overlapping segments in layers (a 4D file): read as one label map,
    segment k as id k + 1 and a later segment winning where they overlap (as Slicer's
    export to a label map); it was a 4D volume of channels, opened as images."""
    from napari_seg._napari_io import get_reader

    layers = np.zeros((2, 7, 6, 5), np.uint8)  # (layer, i, j, k): layers fastest
    layers[0, :3] = 1  # liver
    layers[0, 4:] = 2  # kidney
    layers[1, 2:5] = 1  # tumour, over the liver's last row and the kidney's first
    directions = np.vstack([np.full(3, np.nan), SPACES["left-posterior-superior"][0]])
    segments = {
        "Segment0_Name": "liver", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
        "Segment1_Name": "kidney", "Segment1_LabelValue": "2", "Segment1_Layer": "0",
        "Segment2_Name": "tumour", "Segment2_LabelValue": "1", "Segment2_Layer": "1",
        "Segment2_Color": "0.1 0.8 0.2",
    }  # fmt: skip
    header = {"space": "left-posterior-superior", "space directions": directions,
              "kinds": ["list", "domain", "domain", "domain"], **segments}  # fmt: skip
    path = str(tmp_path / "case.seg.nrrd")
    nrrd.write(path, layers, header)
    array, geometry = read_volume(path)
    expected = np.zeros((7, 6, 5), np.uint8)
    expected[:3], expected[4:], expected[2:5] = 1, 2, 3
    np.testing.assert_array_equal(array, geometry.to_array(expected))
    [(data, kwargs, kind)] = get_reader(path)(path)
    assert kind == "labels"
    np.testing.assert_array_equal(data, array)
    assert kwargs["features"]["class"] == ["background", "liver", "kidney", "tumour"]
    assert kwargs["colormap"][3] == (0.1, 0.8, 0.2, 1.0)


def test_labels_written_with_segments_open_as_a_slicer_segmentation(tmp_path):
    """A label map written with its classes states them as 3D Slicer's segments:
    slicerio (3D Slicer's own reader of .seg.nrrd, the oracle) finds each class but
    the background by name, label value and colour, in one layer spanning the grid;
    napari-seg reads the names back; a name's line break cannot break the header, nor
    can characters ASCII lacks (pynrrd writes headers as ASCII: it failed)."""
    import slicerio

    from napari_seg.medical import VolumeGeometry, class_segments, write_volume

    labels = np.zeros((7, 6, 5), np.uint8)
    labels[1:3, 1:4, 2:5], labels[4:, :2] = 1, 3
    geometry = VolumeGeometry.from_affine(RAS, labels.shape[::-1])
    names = ["background", "liver", "Läsion 腫瘍", "tumour\ncore"]
    colors = [(0, 0, 0, 0), (0.9, 0.1, 0.1, 1), (0.2, 0.3, 0.4, 1), (0.1, 0.8, 0.2, 1)]
    segments = class_segments(names, colors, background=0)
    write_volume(tmp_path / "case_labels.nrrd", labels, geometry, segments=segments)
    found = slicerio.read_segmentation(str(tmp_path / "case_labels.nrrd"))
    rows = [(s["name"], s["labelValue"], s["color"], s["layer"]) for s in found["segments"]]
    assert rows == [
        ("liver", 1, [0.9, 0.1, 0.1], 0),
        ("Lasion", 2, [0.2, 0.3, 0.4], 0),
        ("tumour core", 3, [0.1, 0.8, 0.2], 0),
    ]
    assert all(s["extent"] == [0, 4, 0, 5, 0, 6] for s in found["segments"])  # (i, j, k)
    np.testing.assert_array_equal(found["voxels"], geometry.to_file(labels))
    from napari_seg.medical import nrrd_segments, segment_class_names

    read = segment_class_names(nrrd_segments(tmp_path / "case_labels.nrrd"))
    assert read == ("background", "liver", "Lasion", "tumour core")
    np.testing.assert_array_equal(read_volume(tmp_path / "case_labels.nrrd")[0], labels)
    # a model without a background: every class from 1 is a segment (0 is Slicer's
    # unsegmented voxels); a background of another id is not one
    assert list(class_segments(names, colors, background=None)) == [1, 2, 3]
    assert list(class_segments(names, colors, background=2)) == [1, 3]
    assert class_segments({0: "background", 5: "bone"}, {}) == {5: ("bone", ())}
    with pytest.raises(ValueError, match="label map"):
        write_volume(tmp_path / "p.nrrd", np.zeros((2, *labels.shape)), geometry, segments=segments)
    with pytest.raises(ValueError, match="start at 1"):
        write_volume(tmp_path / "z.nrrd", labels, geometry, segments={0: ("background", ())})
    assert not (tmp_path / "p.nrrd").exists()
    assert not (tmp_path / "z.nrrd").exists()


def test_labels_on_a_window_of_the_image_grid_are_placed_on_it(tmp_path):
    """A segmentation cropped to its segments (3D Slicer's .seg.nrrd; here in the
    other file order, a NIfTI in RAS) is placed on its image's grid with 0 around it,
    voxel for voxel as it lies in the world; labels that would fall outside the image,
    or a window half a voxel off, are refused as grids that differ."""
    from napari_seg.medical import place_on_grid

    image = write(tmp_path / "case.nrrd", voxels((9, 8, 7)))  # (i, j, k) in LPS
    _, grid = read_volume(image)
    labels = np.zeros(grid.array_shape, np.uint8)  # (z, y, x)
    labels[2:5, 3:6, 1:4], labels[4, 5, 3] = 1, 2
    window = (slice(2, 6), slice(3, 7), slice(1, 5))  # z, y, x
    crop = labels[window]
    ras = RAS.copy()  # the image's voxel (i, j, k) = (x, y, z) to RAS
    ras[:3, 3] = RAS[:3, :3] @ [1, 3, 2] + RAS[:3, 3]  # the window's first voxel
    flipped = ras @ np.diag([-1.0, 1.0, 1.0, 1.0])  # stored with x the other way
    flipped[:3, 3] = ras[:3, :3] @ [crop.shape[2] - 1, 0, 0] + ras[:3, 3]
    nib.save(nib.Nifti1Image(crop[:, :, ::-1].T, flipped), str(tmp_path / "c.nii.gz"))
    cropped, window_grid = read_volume(tmp_path / "c.nii.gz")
    np.testing.assert_array_equal(cropped, crop)  # read in LPS order, as the image
    placed = place_on_grid(cropped, window_grid, grid, ("c.nii.gz", "case.nrrd"))
    np.testing.assert_array_equal(placed, labels)
    assert placed.dtype == np.uint8
    assert place_on_grid(labels, grid, grid, ("a", "b")) is labels  # the same grid
    outside = ras.copy()
    outside[:3, 3] = RAS[:3, :3] @ [7, 3, 2] + RAS[:3, 3]  # x from 7 of 9: labels beyond 8
    nib.save(nib.Nifti1Image(crop.T, outside), str(tmp_path / "o.nii.gz"))
    with pytest.raises(ValueError, match=r"o\.nii\.gz and case\.nrrd lie on different voxel grids"):
        place_on_grid(*read_volume(tmp_path / "o.nii.gz"), grid, ("o.nii.gz", "case.nrrd"))
    half = ras.copy()
    half[:3, 3] += RAS[:3, :3] @ [0.5, 0, 0]
    nib.save(nib.Nifti1Image(crop.T, half), str(tmp_path / "h.nii.gz"))
    with pytest.raises(ValueError, match="shape"):
        place_on_grid(*read_volume(tmp_path / "h.nii.gz"), grid, ("h.nii.gz", "case.nrrd"))
    # for training an image cropped from the labels' volume: the labels outside it left out
    kept = place_on_grid(*read_volume(tmp_path / "o.nii.gz"), grid, ("o", "c"), drop_outside=True)
    expected = np.zeros_like(labels)
    expected[2:6, 3:7, 7:9] = crop[:, :, :2]  # x 7 and 8 of the window's 7 to 10
    np.testing.assert_array_equal(kept, expected)
    far = ras.copy()
    far[:3, 3] = RAS[:3, :3] @ [20, 3, 2] + RAS[:3, 3]
    nib.save(nib.Nifti1Image(crop.T, far), str(tmp_path / "f.nii.gz"))
    with pytest.raises(ValueError, match="none of the labelled voxels of f lies on the grid of c"):
        place_on_grid(*read_volume(tmp_path / "f.nii.gz"), grid, ("f", "c"), drop_outside=True)


def test_pair_on_grid_places_whichever_covers_a_window_of_the_other(tmp_path):
    """Of a prediction and its ground truth, the one with fewer voxels is placed on the
    other's grid, whichever it is (so a cropped prediction is scored on its whole
    truth's grid, as a cropped truth on its prediction's), and the names in a refusal
    follow the one placed."""
    from napari_seg.medical import pair_on_grid

    image = write(tmp_path / "case.nrrd", voxels((9, 8, 7)))
    _, grid = read_volume(image)
    labels = np.zeros(grid.array_shape, np.uint8)
    labels[2:5, 3:6, 1:4] = 1
    window = (slice(2, 6), slice(3, 7), slice(1, 5))
    moved = RAS.copy()
    moved[:3, 3] = RAS[:3, :3] @ [1, 3, 2] + RAS[:3, 3]
    nib.save(nib.Nifti1Image(labels[window].T, moved), str(tmp_path / "c.nii.gz"))
    crop, crop_grid = read_volume(tmp_path / "c.nii.gz")
    pred, truth = pair_on_grid(crop, crop_grid, labels, grid, ("pred", "truth"))
    np.testing.assert_array_equal(pred, labels)
    assert truth is labels
    pred, truth = pair_on_grid(labels, grid, crop, crop_grid, ("pred", "truth"))
    assert pred is labels
    np.testing.assert_array_equal(truth, labels)
    same = pair_on_grid(labels, grid, labels, grid, ("pred", "truth"))
    assert same[0] is labels
    assert same[1] is labels
    outside = RAS.copy()
    outside[:3, 3] = RAS[:3, :3] @ [7, 3, 2] + RAS[:3, 3]
    nib.save(nib.Nifti1Image(labels[window].T, outside), str(tmp_path / "o.nii.gz"))
    with pytest.raises(ValueError, match=r"^o\.nii\.gz and case\.nrrd lie on different"):
        pair_on_grid(labels, grid, *read_volume(tmp_path / "o.nii.gz"), ("case.nrrd", "o.nii.gz"))


def test_crop_to_grid_takes_the_voxels_under_a_window(tmp_path):
    """An image's voxels under labels covering a window of its grid, channels first
    kept and a dask array sliced lazily; the image itself on its own grid; refused
    when the labels' grid reaches outside the image's."""
    import dask.array as da

    from napari_seg.medical import crop_to_grid

    image = write(tmp_path / "case.nrrd", voxels((9, 8, 7)))
    array, grid = read_volume(image)
    window = (slice(2, 6), slice(3, 7), slice(1, 5))  # (z, y, x)
    moved = RAS.copy()
    moved[:3, 3] = RAS[:3, :3] @ [1, 3, 2] + RAS[:3, 3]  # the window's first voxel (x, y, z)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), moved), str(tmp_path / "c.nii.gz"))
    crop_grid = read_volume(tmp_path / "c.nii.gz")[1]
    names = ("case.nrrd", "c.nii.gz")
    np.testing.assert_array_equal(crop_to_grid(array, grid, crop_grid, names), array[window])
    channels = np.stack([array, -array])
    np.testing.assert_array_equal(
        crop_to_grid(channels, grid, crop_grid, names), channels[(slice(None), *window)]
    )
    lazy = crop_to_grid(da.from_array(array), grid, crop_grid, names)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), array[window])
    assert crop_to_grid(array, grid, grid, names) is array
    moved[:3, 3] = RAS[:3, :3] @ [6, 3, 2] + RAS[:3, 3]  # x 6 to 9 of 0 to 6
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), moved), str(tmp_path / "o.nii.gz"))
    outside = read_volume(tmp_path / "o.nii.gz")[1]
    with pytest.raises(ValueError, match=r"o\.nii\.gz reaches outside the grid of case\.nrrd"):
        crop_to_grid(array, grid, outside, ("case.nrrd", "o.nii.gz"))
