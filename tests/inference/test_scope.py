import numpy as np
import pytest

from napari_seg.inference import resolve_layout
from napari_seg.inference.scope import plan_scope


def test_whole_2d_image():
    plan = plan_scope((100, 120), in_channels=1, rgb=False, displayed=(0, 1), step=(0, 0))
    assert plan.data_index == (slice(None), slice(None))
    assert plan.labels_shape == (100, 120)
    assert plan.axis is None
    assert plan.channel_axis is None
    assert plan.origin == (0, 0)


def test_rgb_layer_keeps_channels_last():
    plan = plan_scope((50, 60, 3), in_channels=3, rgb=True, displayed=(0, 1), step=(0, 0))
    assert plan.channel_axis == 2
    assert plan.labels_shape == (50, 60)


def test_stack_current_slice_and_whole_stack():
    shape = (5, 64, 80)
    slice_plan = plan_scope(
        shape, in_channels=1, rgb=False, displayed=(1, 2), step=(3, 0, 0), scope="slice"
    )
    assert slice_plan.data_index == (3, slice(None), slice(None))
    assert slice_plan.labels_index == (3, slice(None), slice(None))
    assert slice_plan.axis is None
    assert slice_plan.origin == (3, 0, 0)
    stack_plan = plan_scope(shape, in_channels=1, rgb=False, displayed=(1, 2), step=(3, 0, 0))
    assert stack_plan.axis == (0,)
    layout = resolve_layout(shape, in_channels=1, axis=stack_plan.axis)
    assert layout.n_planes == 5


def test_multichannel_stack_with_channels_on_a_slider():
    # (T, C, Y, X) with C = 2 as a slider axis.
    shape = (4, 2, 40, 48)
    plan = plan_scope(shape, in_channels=2, rgb=False, displayed=(2, 3), step=(1, 0, 0, 0))
    assert plan.channel_axis == 1
    assert plan.axis == (0,)
    assert plan.labels_shape == (4, 40, 48)
    image = np.zeros(shape, np.float32)
    cropped = image[plan.data_index]
    layout = resolve_layout(
        cropped.shape, in_channels=2, channel_axis=plan.channel_axis, axis=plan.axis
    )
    assert layout.output_shape == plan.labels_shape
    slice_plan = plan_scope(
        shape, in_channels=2, rgb=False, displayed=(2, 3), step=(1, 0, 0, 0), scope="slice"
    )
    assert slice_plan.channel_axis == 0
    assert slice_plan.axis is None
    assert slice_plan.labels_index == (1, slice(None), slice(None))


def test_visible_region_is_clipped_to_the_image():
    plan = plan_scope(
        (5, 64, 80),
        in_channels=1,
        rgb=False,
        displayed=(1, 2),
        step=(2, 0, 0),
        scope="visible",
        visible=[(0, 5), (-10, 30), (20, 200)],
    )
    assert plan.data_index == (2, slice(0, 30), slice(20, 80))
    assert plan.origin == (2, 0, 20)


def test_transposed_display_slices_along_the_hidden_axis():
    plan = plan_scope((16, 40, 64), in_channels=1, rgb=False, displayed=(0, 2), step=(0, 7, 0))
    assert plan.axis == (1,)
    layout = resolve_layout((16, 40, 64), in_channels=1, axis=plan.axis)
    assert layout.plane_shape == (16, 64)
    # a 3D model there: the volume, its depth the hidden axis (it was refused: 'a 3D
    # model needs a volume', no slider lying before the plane)
    plan = plan_scope((16, 40, 64), in_channels=1, rgb=False, displayed=(0, 2), step=(0, 7, 0),
                      scope="slice", spatial_dims=3)  # fmt: skip
    assert plan.spatial == (0, 1, 2)
    assert plan.axis is None
    assert plan.data_index == (slice(None),) * 3
    # a time-lapse of stacks shown as z and x: each frame's volume, the frame fixed
    plan = plan_scope((3, 16, 40, 64), in_channels=1, rgb=False, displayed=(1, 3),
                      step=(2, 0, 7, 0), scope="slice", spatial_dims=3)  # fmt: skip
    assert plan.spatial == (1, 2, 3)
    assert plan.data_index == (2, slice(None), slice(None), slice(None))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scope": "all"}, "scope must be one of"),
        ({"displayed": (1,)}, "two displayed axes"),
        ({"in_channels": 3}, "no slider axis of the image"),
        ({"scope": "visible"}, "visible region is unknown"),
    ],
)
def test_bad_plans(kwargs, message):
    args = {"in_channels": 1, "rgb": False, "displayed": (1, 2), "step": (0, 0, 0)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        plan_scope((4, 32, 32), **args)


def test_a_2d_model_in_the_3d_view_segments_the_volume_on_screen():
    """In napari's 3D view the volume is on screen: "slice" and "visible" with a 2D
    model took the plane at the hidden slider's position (one plane nobody sees);
    now every plane of the displayed volume, other sliders (time) still fixed."""
    shape = (3, 10, 64, 80)  # (t, z, y, x)
    for scope, visible in (("slice", None), ("visible", [(0, 3), (0, 10), (5, 40), (0, 80)])):
        plan = plan_scope(shape, in_channels=1, rgb=False, displayed=(1, 2, 3),
                          step=(2, 4, 0, 0), scope=scope, visible=visible)  # fmt: skip
        rows, columns = (slice(5, 40), slice(0, 80)) if visible else (slice(None),) * 2
        assert plan.data_index == (2, slice(None), rows, columns)
        assert plan.axis == (0,)  # slice by slice along z of the chosen frame
        assert plan.origin == (2, 0, 5 if visible else 0, 0)
    stack = plan_scope(shape, in_channels=1, rgb=False, displayed=(1, 2, 3), step=(2, 4, 0, 0))
    assert stack.axis == (0, 1)
    # a 3D model in the 3D view: the displayed volume, its depth the shown one
    plan = plan_scope(shape, in_channels=1, rgb=False, displayed=(1, 2, 3), step=(2, 4, 0, 0),
                      scope="slice", spatial_dims=3)  # fmt: skip
    assert plan.spatial == (1, 2, 3)
    assert plan.data_index == (2, slice(None), slice(None), slice(None))
    # channels are never taken from a displayed axis (z of 2 here)
    with pytest.raises(ValueError, match="no slider axis"):
        plan_scope((5, 2, 64, 80), in_channels=2, rgb=False, displayed=(1, 2, 3),
                   step=(0, 0, 0, 0), scope="slice")  # fmt: skip


@pytest.mark.parametrize(("colours", "name"), [(3, "RGB"), (4, "RGBA")])
def test_an_rgb_layer_for_a_model_of_one_channel_says_how_to_split_it(colours, name):
    """It said "channel axis 2 of the image has 3", which names no way out."""
    with pytest.raises(ValueError, match=rf"the image is {name} \({colours} colour channels\) "
                       r"and the model reads 1: .*right-click the layer > Split RGB"):  # fmt: skip
        plan_scope((50, 60, colours), in_channels=1, rgb=True, displayed=(0, 1), step=(0, 0))
    assert plan_scope((50, 60, 4), in_channels=3, rgb=True, displayed=(0, 1), step=(0, 0))
