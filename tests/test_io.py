"""Reading images from files: by region, in bounded memory, one-line errors for bad files."""

import json
import resource
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from napari_seg._io import read_image
from napari_seg.cli import main


def _patch_tags(path, values: dict[str, int]) -> None:
    """Rewrite inline integer TIFF tags (a corrupt or hostile header)."""
    with tifffile.TiffFile(path) as tif:
        tags = {t.name: t for t in tif.pages[0].tags}
    data = bytearray(path.read_bytes())
    for name, value in values.items():
        tag = tags[name]
        struct.pack_into("<H" if tag.dtype == 3 else "<I", data, tag.valueoffset, value)
    path.write_bytes(bytes(data))


def test_a_tiff_that_needs_a_931_gib_strip_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint32), compression="zlib", rowsperstrip=64)
    _patch_tags(path, {"ImageWidth": 500_000, "ImageLength": 500_000, "RowsPerStrip": 500_000})
    with pytest.raises(ValueError, match=r"931\.3 GiB each in memory"):
        read_image(path)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_tiff_of_width_and_height_zero_is_one_line(tmp_path, capsys, compression):
    path = tmp_path / "empty.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8), compression=compression)
    _patch_tags(path, {"ImageWidth": 0, "ImageLength": 0})
    with pytest.raises(ValueError, match="empty"):
        read_image(path)
    argv = ["evaluate", "--pred", str(path), "--gt", str(path)]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "empty.tif" in err[0]


REGION_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from napari_seg._io import read_image
    from napari_seg.arrays.layout import resolve_layout
    from napari_seg.arrays.normalize import compute_stats
    from napari_seg.models.spec import Normalization

    image = read_image(sys.argv[1])
    region = np.asarray(image[8000:8512, 8000:8512])
    layout = resolve_layout(image.shape, in_channels=1)
    stats = compute_stats(image, layout, Normalization())
    print(type(image).__name__, region.shape, int(region.max()), stats.sampled)
    """
)


def test_a_large_compressed_tiled_tiff_is_read_by_region(tmp_path):
    """16384^2 uint16 (512 MiB decompressed) read and normalised under a 300 MiB heap limit."""
    path = tmp_path / "slide.tif"
    tile = np.zeros((512, 512), np.uint16)
    tile[::16, ::16] = 1000
    tiles = (tile for _ in range(32 * 32))
    tifffile.imwrite(
        path, tiles, shape=(16384, 16384), dtype=np.uint16, tile=(512, 512), compression="zlib"
    )
    limit = 300 * 2**20
    result = subprocess.run(
        [sys.executable, "-c", REGION_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["Array", "(512,", "512)", "1000", "True"]


@pytest.mark.parametrize("compression", ["tiff_lzw", "packbits", "tiff_adobe_deflate"])
def test_a_tiff_compressed_as_microscopes_and_fiji_save_it_reads(tmp_path, compression):
    """LZW is how many microscopes and Fiji export TIFFs; tifffile decodes it through
    imagecodecs, a dependency (without it: "requires the 'imagecodecs' package")."""
    from PIL import Image

    data = np.random.default_rng(0).integers(0, 255, (40, 56), dtype=np.uint8)
    Image.fromarray(data).save(tmp_path / "exported.tif", compression=compression)
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "exported.tif")), data)


def test_a_pyramidal_tiff_is_read_at_full_resolution(tmp_path):
    path = tmp_path / "pyramid.tif"
    data = np.random.default_rng(0).integers(0, 255, (512, 512), dtype=np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(data, subifds=1, tile=(256, 256), compression="zlib")
        tif.write(data[::2, ::2], subfiletype=1, tile=(256, 256), compression="zlib")
    image = read_image(path)
    assert image.shape == (512, 512)
    np.testing.assert_array_equal(np.asarray(image[100:300, 50:60]), data[100:300, 50:60])


def test_a_tiff_of_several_images_says_which_one_is_read(tmp_path, caplog):
    """A multi-position OME-TIFF holds an image per position: the first is read and a
    warning names them all (the others were dropped without a word); a pyramid is one
    image and says nothing."""
    import logging

    first, second = (np.full(shape, v, np.uint16) for shape, v in (((64, 80), 1), ((50, 70), 2)))
    with tifffile.TiffWriter(tmp_path / "positions.ome.tif", ome=True) as tif:
        tif.write(first, metadata={"axes": "YX"})
        tif.write(second, metadata={"axes": "YX"})
    with caplog.at_level(logging.WARNING, logger="napari_seg"):
        np.testing.assert_array_equal(read_image(tmp_path / "positions.ome.tif"), first)
    assert "positions.ome.tif holds 2 images (64x80, 50x70): napari-seg reads the first" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="napari_seg"):
        test_a_pyramidal_tiff_is_read_at_full_resolution(tmp_path)
    assert not caplog.records


_MALFORMED_MULTISCALES = {
    "a list of strings": (["abc"], "'multiscales' is not a list of objects"),
    "a number": (5, "'multiscales' is not a list of objects"),
    "no datasets": ([{"axes": []}], "datasets' is not a non-empty list"),
    "a dataset as a string": ([{"datasets": ["0"]}], "datasets[0].path' is missing"),
    "a dataset without path": ([{"datasets": [{"p": "0"}]}], "datasets[0].path' is missing"),
    "a path up and out": ([{"datasets": [{"path": "../secret"}]}], "leaves the group"),
    "an absolute path": ([{"datasets": [{"path": "/etc"}]}], "leaves the group"),
    "a path to nothing": ([{"datasets": [{"path": "nope"}]}], "'nope' is not an array"),
    "a path to a group": ([{"datasets": [{"path": "sub"}]}], "'sub' is not an array"),
    "too many levels": ([{"datasets": [{"path": str(i)} for i in range(100)]}], "more than 64"),
    "a scale of the wrong length": (
        [
            {
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0]}]}
                ]
            }
        ],
        "datasets[0].coordinateTransformations': its scale is not 2 finite numbers",
    ),
    "a zero scale": (
        [
            {
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0, 1]}]}
                ]
            }
        ],
        "its scale is not positive",
    ),
    "a translation of strings": (
        [
            {
                "datasets": [{"path": "0"}],
                "coordinateTransformations": [{"type": "translation", "translation": ["1", "2"]}],
            }
        ],
        "'multiscales[0].coordinateTransformations': its translation is not 2 finite",
    ),
    "an unknown transformation": (
        [{"datasets": [{"path": "0", "coordinateTransformations": [{"type": "affine"}]}]}],
        "holds a transformation of type 'affine'",
    ),
    "transformations as an object": (
        [{"datasets": [{"path": "0", "coordinateTransformations": {"type": "scale"}}]}],
        "coordinateTransformations' is not a short list",
    ),
}


@pytest.mark.parametrize("case", list(_MALFORMED_MULTISCALES))
def test_malformed_ome_zarr_metadata_is_an_error_naming_the_field(tmp_path, case):
    """Hostile or broken multiscales metadata: one line naming the field, never an
    AttributeError/KeyError, never a read outside the group."""
    zarr = pytest.importorskip("zarr")
    multiscales, message = _MALFORMED_MULTISCALES[case]
    (tmp_path / "secret").mkdir()
    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(16, 16), dtype="uint8")[:] = 1
    group.create_group("sub")
    group.attrs["multiscales"] = multiscales
    with pytest.raises(ValueError, match="OME-Zarr metadata is malformed") as caught:
        read_image(tmp_path / "img.ome.zarr")
    assert message in str(caught.value)


def test_ome_zarr_levels_are_read_finest_first(tmp_path):
    zarr = pytest.importorskip("zarr")
    from napari_seg._ome_zarr import ome_zarr_datasets

    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("s0", shape=(16, 16), dtype="uint8")[:] = 7
    group.create_array("s1", shape=(8, 8), dtype="uint8")
    group.attrs["multiscales"] = [{"datasets": [{"path": "s0"}, {"path": "s1"}]}]
    assert ome_zarr_datasets(group) == ["s0", "s1"]
    assert np.asarray(read_image(tmp_path / "img.ome.zarr")).shape == (16, 16)


def test_the_ome_zarr_transform_combines_the_level_s_and_the_image_s(tmp_path):
    """NGFF: the level's transformations, then the image's; identity is allowed."""
    zarr = pytest.importorskip("zarr")
    from napari_seg._headers import source_spacing
    from napari_seg._ome_zarr import read_ome_zarr_transform

    group = zarr.open_group(str(tmp_path / "img.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("s0", shape=(4, 16, 16), dtype="uint8")
    group.attrs["multiscales"] = [{
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": [2.0, 0.5, 0.25]},
            {"type": "translation", "translation": [1.0, 2.0, 3.0]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0, 2.0]},
                                      {"type": "identity"}],
    }]  # fmt: skip
    scale, translation, units = read_ome_zarr_transform(tmp_path / "img.ome.zarr")
    assert units == (None, None, None)  # no axes: no units
    assert scale == (2.0, 1.0, 0.5)
    assert translation == (1.0, 4.0, 6.0)  # the image's scale applies to the translation
    assert source_spacing(tmp_path / "img.ome.zarr", [1, 2]) == ((1.0, 0.5), None)
    # a scale of 1 says nothing (ome-zarr-py's default), a plain zarr array has none
    group.attrs["multiscales"] = [{"datasets": [{"path": "s0"}]}]
    assert source_spacing(tmp_path / "img.ome.zarr", [0, 1, 2]) is None
    zarr.open_array(str(tmp_path / "plain.zarr"), mode="w", shape=(8, 8), dtype="uint8")
    assert read_ome_zarr_transform(tmp_path / "plain.zarr") is None


def _ome_axes(tmp_path, axes):
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "u.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=(2, 4, 16, 16), dtype="uint8")
    transforms = [
        {"type": "scale", "scale": [3.0, 2.0, 500.0, 250.0]},
        {"type": "translation", "translation": [1.0, 1.0, 100.0, 0.0]},
    ]
    datasets = [{"path": "0", "coordinateTransformations": transforms}]
    group.attrs["multiscales"] = [{"axes": axes, "datasets": datasets}]
    return tmp_path / "u.ome.zarr"


def test_ome_zarr_spatial_axes_in_different_units_give_one_voxel_size(tmp_path):
    """z in micrometres, y and x in nanometres: the voxel size and origin are expressed
    in the last spatial axis's unit (x), the time axis keeps its own."""
    from napari_seg._headers import source_spacing
    from napari_seg._ome_zarr import read_ome_zarr_transform

    path = _ome_axes(tmp_path, [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"}])  # fmt: skip
    scale, translation, units = read_ome_zarr_transform(path)
    assert scale == pytest.approx((3.0, 2000.0, 500.0, 250.0))
    assert translation == pytest.approx((1.0, 1000.0, 100.0, 0.0))
    assert units == ("second", "nanometer", "nanometer", "nanometer")
    spacing, unit = source_spacing(path, [1, 2, 3])
    assert spacing == pytest.approx((2000.0, 500.0, 250.0))
    assert unit == "nanometer"


@pytest.mark.parametrize(
    ("axes", "units"),
    [
        # one unit along every spatial axis: the values as declared
        ([{"name": n, "type": "space", "unit": "millimeter"} for n in "tzyx"], ("millimeter",) * 4),
        # a spatial axis without a unit: nothing can be converted
        ([{"name": "t", "type": "time"}, {"name": "z", "unit": "micrometer"}, {"name": "y"},
          {"name": "x", "unit": "nanometer"}], (None, "micrometer", None, "nanometer")),
        # units NGFF does not list, or a length unit on a time axis: unknown
        ([{"name": "t", "type": "time", "unit": "meter"}, {"name": "z", "unit": "parsecs"},
          {"name": "y", "unit": 5}, {"name": "x", "unit": "micrometer"}],
         (None, None, None, "micrometer")),
        # NGFF 0.3's names only, or an axes list of another length: no units
        (["t", "z", "y", "x"], (None,) * 4),
        ([{"name": "y", "unit": "micrometer"}], (None,) * 4),
    ],
)  # fmt: skip
def test_ome_zarr_units_that_cannot_be_converted_leave_the_values_as_declared(
    tmp_path, axes, units
):
    from napari_seg._ome_zarr import read_ome_zarr_transform

    scale, translation, got = read_ome_zarr_transform(_ome_axes(tmp_path, axes))
    assert got == units
    assert scale == (3.0, 2.0, 500.0, 250.0)
    assert translation == (1.0, 1.0, 100.0, 0.0)


@pytest.mark.parametrize(
    ("scale", "translation"),
    [([1.0, 1e300, 1.0, 1.0], [0.0] * 4), ([1.0] * 4, [0.0, 1e300, 0.0, 0.0])],
)
def test_ome_zarr_units_that_overflow_are_an_error(tmp_path, scale, translation):
    """Yottametres against yoctometres: 1e48 times a large value is not a number."""
    zarr = pytest.importorskip("zarr")
    from napari_seg._ome_zarr import read_ome_zarr_transform

    path = _ome_axes(tmp_path, [{"name": "t", "type": "time"}, {"name": "z", "unit": "yottameter"},
                                {"name": "y", "unit": "yoctometer"},
                                {"name": "x", "unit": "yoctometer"}])  # fmt: skip
    group = zarr.open_group(str(path), mode="r+")
    multiscales = group.attrs["multiscales"]
    multiscales[0]["datasets"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": scale},
        {"type": "translation", "translation": translation},
    ]
    group.attrs["multiscales"] = multiscales
    with pytest.raises(ValueError, match=r"not finite.*in one unit \('yoctometer'\)"):
        read_ome_zarr_transform(path)


def test_a_layer_s_scale_with_units_gives_one_voxel_size():
    """napari layer units follow the OME-Zarr rule; napari's default "pixel" (no length
    unit) converts nothing, and a scale of 1 everywhere still says nothing."""
    from napari_seg.arrays.spacing import spacing_from_scale

    mixed = ["second", "micrometer", "nanometer", "nanometer"]
    assert spacing_from_scale([5, 2, 500, 250], [1, 2, 3], mixed) == pytest.approx(
        (2000.0, 500.0, 250.0)
    )
    assert spacing_from_scale([5, 2, 500, 250], [1, 2, 3], ["pixel"] * 4) == (2.0, 500.0, 250.0)
    assert spacing_from_scale([5, 2, 0.5, 0.5], [1, 2, 3], None) == (2.0, 0.5, 0.5)
    assert spacing_from_scale([1, 1, 1], [0, 1, 2], ["pixel"] * 3) is None


def test_a_zarr_array_stored_in_one_huge_chunk_is_refused_before_reading(tmp_path):
    """The TIFF rule for zarr inputs: one 4.6 GiB chunk would be decompressed whole for
    every region read (the array's metadata alone is a few hundred bytes here)."""
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "one_chunk.zarr"
    zarr.open_array(str(path), mode="w", shape=(70_000, 70_000), chunks=(70_000, 70_000),
                    dtype="uint8", zarr_format=2)  # fmt: skip
    with pytest.raises(ValueError, match=r"4\.6 GiB each in memory.*rechunk it"):
        read_image(path)
    # Chunks of a sane size: read lazily, by region.
    fine = tmp_path / "chunked.zarr"
    zarr.open_array(str(fine), mode="w", shape=(70_000, 70_000), chunks=(512, 512),
                    dtype="uint8", zarr_format=2)  # fmt: skip
    assert read_image(fine).shape == (70_000, 70_000)


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([0.0, 1.0, 2.0], np.uint8),  # FSL-style float segmentation
        ([0.0, 300.0], np.uint16),  # a Fiji 32-bit label map
        ([-1.0, 4.0], np.int32),
        ([False, True], np.uint8),  # a mask
        ([0.0, 0.5], np.float32),  # not label ids: left for the caller to name
        ([0.0, np.nan], np.float32),
        ([0.0, 2.0**40], np.float32),
    ],
)
def test_label_files_stored_as_floats_or_booleans_read_as_integer_ids(tmp_path, values, dtype):
    from napari_seg._io import read_labels

    source = np.resize(np.asarray(values), (6, 7))
    if source.dtype != np.bool_:
        source = source.astype(np.float32)
    tifffile.imwrite(tmp_path / "labels.tif", source)
    labels, _ = read_labels(tmp_path / "labels.tif")
    assert labels.dtype == dtype
    np.testing.assert_array_equal(labels, source)


def test_a_palette_png_of_labels_reads_as_its_class_ids(tmp_path, capsys):
    """Pascal VOC, CVAT and labelme store label masks as palette PNGs: as labels they
    are their indices (they were read as colours, (H, W, 3), and refused against the
    prediction); as an image, the colours stay."""
    from PIL import Image

    from napari_seg._io import read_labels

    ids = np.zeros((24, 30), np.uint8)
    ids[4:12, 5:20], ids[15:22, 8:25] = 1, 2
    mask = Image.fromarray(ids, mode="P")
    mask.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    mask.save(tmp_path / "gt.png")
    labels, geometry = read_labels(tmp_path / "gt.png")
    np.testing.assert_array_equal(labels, ids)
    assert geometry is None
    assert read_image(tmp_path / "gt.png").shape == (24, 30, 3)
    tifffile.imwrite(tmp_path / "pred.tif", ids)
    args = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.png")]
    assert main(args) == 0
    assert "mean IoU: 1.0000" in capsys.readouterr().out


def test_a_mask_stored_channel_last_scores_against_its_plane(tmp_path, capsys):
    """A mask saved as ``(H, W, 1)`` (Keras, OpenCV) against an ``(H, W)`` prediction
    was refused: "pred and gt must have the same shape"."""
    from napari_seg._io import read_labels

    gt = np.zeros((24, 30), np.uint8)
    gt[4:12, 5:20] = 1
    tifffile.imwrite(tmp_path / "gt.tif", gt[..., None])
    np.save(tmp_path / "gt.npy", gt[None, ..., None])
    np.testing.assert_array_equal(read_labels(tmp_path / "gt.tif")[0], gt)
    assert read_labels(tmp_path / "gt.npy")[0].shape == (1, 24, 30)  # a stack of one
    pred = gt.copy()
    pred[4:6] = 0
    tifffile.imwrite(tmp_path / "pred.tif", pred)
    argv = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif")]
    assert main([*argv, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.5 < scores["mean_iou"] < 1


def test_a_grey_mask_saved_in_colour_mode_is_its_ids_and_colours_are_refused(tmp_path, capsys):
    """A mask saved as an RGB(A) PNG with equal channels (as paint programs and
    Fiji's "RGB Color" save it) was (H, W, 3) against an (H, W) prediction: "must have
    the same shape". It is now its grey levels; a PNG of several colours is refused
    as a colour image, since which id a colour stands for is the dataset's rule."""
    from PIL import Image

    from napari_seg._io import read_labels

    ids = np.zeros((24, 30), np.uint8)
    ids[4:12, 5:20] = 255
    Image.fromarray(np.stack([ids] * 3, -1)).save(tmp_path / "rgb.png")
    opaque = np.concatenate([np.stack([ids] * 3, -1), np.full((24, 30, 1), 255, np.uint8)], -1)
    Image.fromarray(opaque).save(tmp_path / "rgba.png")
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([ids] * 3, -1), photometric="rgb")
    for name in ("rgb.png", "rgba.png", "rgb.tif"):  # the TIFF as Fiji's "RGB Color"
        labels, _ = read_labels(tmp_path / name)
        np.testing.assert_array_equal(labels, ids)
    three = np.stack([ids, ids // 255, ids], -1)  # a YX stack of 3 planes is not colours
    tifffile.imwrite(tmp_path / "planes.tif", np.moveaxis(three, -1, 0), photometric="minisblack")
    assert read_labels(tmp_path / "planes.tif")[0].shape == (3, 24, 30)
    colours = np.zeros((24, 30, 3), np.uint8)
    colours[4:12, 5:20] = (255, 0, 0)
    colours[15:22, 8:25] = (0, 255, 0)
    Image.fromarray(colours).save(tmp_path / "colours.png")
    with pytest.raises(ValueError, match=r"colours.png is a colour image \(3 colours\)"):
        read_labels(tmp_path / "colours.png")
    varying = opaque.copy()
    varying[..., 3] = np.where(ids > 0, 255, 0)
    Image.fromarray(varying).save(tmp_path / "alpha.png")
    with pytest.raises(ValueError, match=r"alpha channel varies"):
        read_labels(tmp_path / "alpha.png")
    Image.fromarray(colours).save(tmp_path / "colours.jpg")  # lossy: many colours
    with pytest.raises(ValueError, match=r"colour image .*JPEG's compression changes the ids"):
        read_labels(tmp_path / "colours.jpg")
    tifffile.imwrite(tmp_path / "pred.tif", ids)
    args = ["evaluate", "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "rgb.png")]
    assert main(args) == 0
    assert "mean IoU: 1.0000" in capsys.readouterr().out
    assert read_image(tmp_path / "rgb.png").shape == (24, 30, 3)  # as an image: its colours


def test_evaluate_reads_a_float_nifti_segmentation(tmp_path, capsys):
    """`napari-seg evaluate --gt brain_seg.nii.gz` where the file holds 0.0/1.0/2.0
    floats (as FSL writes them): scored, not refused for its dtype."""
    nib = pytest.importorskip("nibabel", reason="the medical extra (nibabel) is missing")
    gt = np.zeros((10, 12, 8), np.float32)
    gt[2:6, 3:8, 1:4], gt[6:9, 8:11, 4:7] = 1.0, 2.0
    nib.save(nib.Nifti1Image(gt, np.eye(4)), str(tmp_path / "brain_seg.nii.gz"))
    nib.save(nib.Nifti1Image(gt.astype(np.uint8), np.eye(4)), str(tmp_path / "pred.nii.gz"))
    args = ["evaluate", "--pred", str(tmp_path / "pred.nii.gz"),
            "--gt", str(tmp_path / "brain_seg.nii.gz"), "--json"]  # fmt: skip
    assert main(args) == 0
    import json

    scores = json.loads(capsys.readouterr().out)
    assert scores["mean_iou"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("a.tif", "a"),
        ("a.OME.TIFF", "a"),
        ("brain.nii.gz", "brain"),
        ("x_labels.ome.zarr", "x_labels"),
        ("2024.01.05_a.tif", "2024.01.05_a"),  # dots of a date belong to the name
        ("sample 1.2.png", "sample 1.2"),
        ("1.2.840.10008.1", "1.2.840.10008.1"),  # a DICOM folder named by its UID
        (".tif", ".tif"),
    ],
)
def test_output_stem_drops_the_extension_only(name, stem):
    from napari_seg._io import output_stem

    assert output_stem(name) == stem


@pytest.mark.parametrize("shape", [(3, 16, 20), (4, 16, 20), (16, 20, 3)])
def test_labels_of_3_or_4_slices_are_written_as_greyscale_not_rgb(tmp_path, shape):
    """tifffile, left to guess, stores such arrays as an RGB image (Fiji: colours)."""
    import tifffile

    from napari_seg._io_write import write_labels

    labels = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape) % 3
    write_labels(tmp_path / "x_labels.tif", labels)
    with tifffile.TiffFile(tmp_path / "x_labels.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
        np.testing.assert_array_equal(tif.asarray(), labels)
