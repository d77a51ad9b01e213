import numpy as np
import pytest

from napari_seg.inference import resolve_layout


def test_grayscale_plane():
    layout = resolve_layout((64, 80), in_channels=1)
    assert layout.channel_axis is None
    assert layout.slice_axes == ()
    assert layout.plane_shape == (64, 80)
    assert layout.output_shape == (64, 80)
    assert layout.n_planes == 1


@pytest.mark.parametrize(
    ("shape", "channels", "expected"),
    [
        ((64, 64, 3), 3, 2),  # RGB
        ((64, 64, 4), 3, 2),  # RGBA into an RGB model: alpha dropped
        ((2, 64, 64), 2, 0),  # channel-first multichannel
        ((64, 5, 64), 5, 1),
    ],
)
def test_channel_axis_is_detected(shape, channels, expected):
    layout = resolve_layout(shape, in_channels=channels)
    assert layout.channel_axis == expected
    assert layout.channels == channels
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    block = layout.read(image, (), slice(0, 10), slice(0, 12))
    assert block.shape == (channels, 10, 12)
    np.testing.assert_array_equal(block[1], np.take(image, 1, axis=expected)[:10, :12])


def test_stack_needs_an_axis_and_keeps_the_others():
    with pytest.raises(ValueError, match=r"choose the axis to go through slice by slice"):
        resolve_layout((5, 64, 64), in_channels=1)
    # A time series of z-stacks for a 2D model: both leading axes.
    with pytest.raises(ValueError, match=r"e\.g\. --axis 0,1 / axis=\(0, 1\)$"):
        resolve_layout((3, 5, 64, 64), in_channels=1)
    assert resolve_layout((3, 5, 64, 64), in_channels=1, axis=(0, 1)).n_planes == 15
    layout = resolve_layout((5, 64, 64), in_channels=1, axis=0)
    assert layout.slice_axes == (0,)
    assert layout.n_planes == 5
    # Slicing along Y of a ZYX stack: planes are ZX.
    layout = resolve_layout((16, 40, 64), in_channels=1, axis=1)
    assert layout.plane_shape == (16, 64)
    assert layout.output_shape == (16, 40, 64)


@pytest.mark.parametrize(
    ("shape", "dims", "axes"),
    [((1, 64, 64), 2, (0,)), ((1, 1, 64, 64), 2, (0, 1)), ((1, 8, 32, 32), 3, (0,))],
)
def test_axes_of_length_one_need_no_choosing(shape, dims, axes):
    """A plane as PyTorch holds it, ``(1, H, W)`` or ``(1, 1, H, W)``, or a 2D NIfTI as
    read, ``(1, y, x)``, was refused with "choose the axis to go through slice by
    slice", though there is nothing to choose: it is a stack of one, and its labels
    keep its shape."""
    layout = resolve_layout(shape, in_channels=1, spatial_dims=dims)
    assert layout.slice_axes == axes
    assert layout.n_planes == 1
    assert layout.output_shape == shape
    with pytest.raises(ValueError, match="choose the axis"):  # a real stack still asks
        resolve_layout((2, *shape[1:]), in_channels=1, spatial_dims=dims)


@pytest.mark.parametrize(
    ("shape", "dims", "axis", "output"),
    [
        ((64, 80, 1), 2, None, (64, 80)),
        ((1, 64, 80, 1), 2, None, (1, 64, 80)),
        ((5, 64, 80, 1), 2, 0, (5, 64, 80)),
        ((8, 32, 32, 1), 3, None, (8, 32, 32)),
    ],
)
def test_a_last_axis_of_one_is_a_one_channel_model_s_channel(shape, dims, axis, output):
    """A grey image stored channel-last, ``(H, W, 1)`` (Keras, OpenCV, a TIFF saved
    from them), was refused ("3 non-channel axes ... e.g. --axis 0"), and that advice
    would have given the network planes one pixel wide."""
    layout = resolve_layout(shape, in_channels=1, axis=axis, spatial_dims=dims)
    assert layout.channel_axis == len(shape) - 1
    assert layout.output_shape == output
    assert layout.spatial_shape == output[-dims:]
    with pytest.raises(ValueError, match="choose the axis"):  # a stack still asks
        resolve_layout((5, 64, 80, 1), in_channels=1)
    # Named as the stack axis, it is one; a model of 3 channels finds none there.
    assert resolve_layout((64, 80, 1), in_channels=1, axis=2).slice_axes == (2,)
    with pytest.raises(ValueError, match="expects 3 channels"):
        resolve_layout((64, 80, 1), in_channels=3)


def test_time_series_of_multichannel_stacks():
    layout = resolve_layout((3, 4, 2, 32, 48), in_channels=2, channel_axis=2, axis=(0, 1))
    assert layout.n_planes == 12
    assert layout.output_shape == (3, 4, 32, 48)
    assert layout.plane_at(5) == (1, 1)
    assert list(layout.planes())[5] == (1, 1)
    assert layout.output_index((1, 1), slice(0, 2), slice(None)) == (1, 1, slice(0, 2), slice(None))


def test_transposed_plane_axes_are_read_in_order():
    # channel last, slicing along Y of a (Z, Y, X, C) image: plane (Z, X).
    image = np.random.default_rng(0).random((12, 9, 16, 3)).astype(np.float32)
    layout = resolve_layout(image.shape, in_channels=3, axis=1)
    block = layout.read(image, (4,), slice(0, 12), slice(0, 16))
    np.testing.assert_array_equal(block, np.moveaxis(image[:, 4], -1, 0))


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((64, 64), {"in_channels": 3}, "expects 3 channels but no axis.*--channel-axis"),
        ((64, 64, 2), {"in_channels": 3, "channel_axis": -1}, "has 2$"),
        ((2, 64, 64), {"in_channels": 1, "channel_axis": 0}, "has 2; read one .*--channel N"),
        ((0, 64), {"in_channels": 1}, "empty"),
        ((1, 1), {"in_channels": 1}, "too small"),
        ((64, 1), {"in_channels": 1}, "too small"),
        ((64, 4, 4), {"in_channels": 1, "spatial_dims": 3}, "at least 8 along two of the"),
        ((64,), {"in_channels": 1}, "at least 2 dimensions"),
        ((5, 64, 64), {"in_channels": 1, "axis": 3}, "out of range"),
        ((3, 64, 64), {"in_channels": 3, "axis": 0}, "is the channel axis"),
        ((5, 64, 64), {"in_channels": 1, "axis": 1.5}, "must be an integer"),
    ],
)
def test_bad_layouts_say_what_is_wrong(shape, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        resolve_layout(shape, **kwargs)


@pytest.mark.parametrize(
    ("axes", "dims", "expected"),
    [
        ("TYX", 2, (0,)),  # a time-lapse saved by Fiji
        ("ZYX", 2, (0,)),
        ("TZCYX", 2, (0, 1)),
        ("TZCYX", 3, (0,)),  # a 3D model sees ZYX: only time is sliced
        ("ZYX", 3, None),  # nothing to slice
        ("YXS", 2, None),  # RGB
        ("CYX", 2, None),
        ("IYX", 2, None),  # tifffile's page sequence: says nothing
        ("QYX", 2, None),
        ("YXZ", 2, None),
        (None, 2, None),
    ],
)
def test_stack_axes_a_file_names(axes, dims, expected):
    from napari_seg.arrays.named import named_slice_axes

    assert named_slice_axes(axes, dims) == expected


def test_a_3d_model_steps_through_every_slider_but_the_depth():
    from napari_seg.arrays.screen import stack_axes

    assert stack_axes(3, displayed=(1, 2), channel_axis=None, spatial_dims=3) is None
    assert stack_axes(4, displayed=(2, 3), channel_axis=None, spatial_dims=3) == 0  # TZYX
    assert stack_axes(4, displayed=(1, 2, 3), channel_axis=None, spatial_dims=3) == 0
    assert stack_axes(5, displayed=(3, 4), channel_axis=1, spatial_dims=3) == 0  # TCZYX
    assert stack_axes(4, displayed=(2, 3), channel_axis=None) == (0, 1)  # a 2D model
    # a transposed view (z and x shown): the hidden y is the volume's, not a slider's
    assert stack_axes(3, displayed=(0, 2), channel_axis=None, spatial_dims=3) is None
    assert stack_axes(4, displayed=(1, 3), channel_axis=None, spatial_dims=3) == 0  # TZYX
    assert stack_axes(5, displayed=(2, 4), channel_axis=1, spatial_dims=3) == 0  # TCZYX


@pytest.mark.parametrize(
    ("shape", "labels", "exclude", "expected"),
    [
        ((2, 64, 48), (64, 48), (), 0),  # CYX painted with YX labels
        ((64, 48, 3), (64, 48), (), 2),
        ((5, 2, 64, 48), (5, 64, 48), (0,), 1),  # ZCYX, Z a stack axis
        ((5, 2, 64, 48), (5, 64, 48), (1,), None),  # the one axis is excluded
        ((64, 48), (64, 48), (), None),  # no axis lacking
        ((2, 2, 48), (2, 48), (), None),  # axis 0 or 1: cannot tell
        ((24, 64, 48), (64, 48), (), None),  # a stack's depth, not channels
        ((1, 64, 48), (64, 48), (), 0),  # one channel, as PyTorch lays out a plane
    ],
)
def test_a_new_model_s_channels_are_the_axis_its_labels_lack(shape, labels, exclude, expected):
    from napari_seg.arrays.channels import labels_channel_axis

    assert labels_channel_axis(shape, labels, exclude=exclude) == expected


def test_a_plane_for_a_3d_model_says_what_to_give_instead():
    with pytest.raises(ValueError, match="the model is 3D: give it a volume, or segment the plane"):
        resolve_layout((2, 32, 40), in_channels=2, spatial_dims=3)
