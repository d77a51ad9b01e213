import pytest

from napari_seg.refine.scope import plan_refine_scope


def test_2d_is_always_the_whole_array():
    plan = plan_refine_scope((8, 9), displayed=(0, 1), step=(0, 0), scope="volume")
    assert plan.index == (slice(None), slice(None))
    assert not plan.per_slice


def test_3d_slice_each_and_volume():
    s = slice(None)
    slice_plan = plan_refine_scope((4, 8, 9), displayed=(1, 2), step=(2, 0, 0), scope="slice")
    assert slice_plan.index == (2, s, s)
    each = plan_refine_scope((4, 8, 9), displayed=(1, 2), step=(2, 0, 0), scope="each")
    assert each.index == (s, s, s)
    assert each.per_slice
    assert each.axis == 0
    # Looking along rows: planes are (z, x) and the stack axis is 1.
    rows = plan_refine_scope((4, 8, 9), displayed=(0, 2), step=(0, 5, 0), scope="each")
    assert rows.axis == 1
    assert rows.per_slice
    volume = plan_refine_scope((4, 8, 9), displayed=(1, 2), step=(2, 0, 0), scope="volume")
    assert volume.index == (s, s, s)
    assert not volume.per_slice


def test_4d_keeps_time_at_the_current_point():
    s = slice(None)
    plan = plan_refine_scope((3, 4, 8, 9), displayed=(2, 3), step=(1, 2, 0, 0), scope="volume")
    assert plan.index == (1, s, s, s)
    assert plan.axis == 0


def test_bad_scope():
    with pytest.raises(ValueError, match="scope must be one of"):
        plan_refine_scope((4, 4), displayed=(0, 1), step=(0, 0), scope="all")


def test_the_current_slice_in_the_3d_view_is_the_volume_on_screen():
    """In napari's 3D view the z slider is hidden: "current slice" refined the plane
    at its position, which nobody sees; it is now every plane of the shown volume
    (time still at its frame), and the stack axis is the depth shown."""
    s = slice(None)
    plan = plan_refine_scope((3, 4, 8, 9), displayed=(1, 2, 3), step=(1, 2, 0, 0), scope="slice")
    assert plan.index == (1, s, s, s)
    assert plan.per_slice
    assert plan.axis == 0
    # the volume shown from its side: the depth shown (x) is the stack axis
    side = plan_refine_scope((4, 8, 9), displayed=(2, 0, 1), step=(0, 0, 3), scope="each")
    assert side.index == (s, s, s)
    assert side.axis == 2
    volume = plan_refine_scope((4, 8, 9), displayed=(0, 1, 2), step=(2, 0, 0), scope="volume")
    assert not volume.per_slice
