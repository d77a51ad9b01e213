"""Writing a job's labels into a Labels layer as one undo step (no viewer needed)."""

import numpy as np
import pytest

napari = pytest.importorskip("napari", reason="napari is needed for widget tests")

from napari_seg._widgets import _history  # noqa: E402
from napari_seg._widgets._history import changed_positions, write_undoable  # noqa: E402


class Reads:
    """An array-like that records the first-axis pieces read from it."""

    def __init__(self, data):
        self.data, self.shape, self.reads = data, data.shape, []

    def __getitem__(self, index):
        self.reads.append(index)
        return self.data[index]


@pytest.mark.parametrize("shape", [(7, 9), (5, 6, 7), (1, 40)])
def test_changed_positions_are_numpys_nonzero_read_in_pieces(monkeypatch, shape):
    monkeypatch.setattr(_history, "COMPARE_ELEMENTS", 40)
    rng = np.random.default_rng(0)
    old = rng.integers(0, 3, shape).astype(np.uint8)
    new = np.where(rng.random(shape) < 0.3, 2, old).astype(np.uint8)
    source = Reads(old)
    got = changed_positions(new, source)
    expected = np.nonzero(new != old)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    per_piece = max(1, 40 // int(np.prod(shape[1:])))
    assert len(source.reads) == -(-shape[0] // per_piece)


def test_changed_positions_of_equal_labels_are_empty():
    labels = np.ones((4, 5), np.uint16)
    got = changed_positions(labels, labels.copy())
    assert [a.size for a in got] == [0, 0]


def test_changed_positions_refuse_another_shape():
    with pytest.raises(ValueError, match=r"cannot compare \(4, 5\) labels with \(4, 6\)"):
        changed_positions(np.zeros((4, 5)), np.zeros((4, 6)))


def test_a_write_of_the_changed_positions_is_one_undo_step():
    old = np.zeros((3, 20, 20), np.uint8)
    layer = napari.layers.Labels(old.copy())
    new = old.copy()
    new[1, 5:10, 5:10] = 2
    changed = changed_positions(new[1], old[1])
    layer.data[1, 0, 0] = 1  # painted after the worker compared: kept
    assert write_undoable(layer, (1, slice(None), slice(None)), new[1], changed=changed) == 25
    assert (layer.data[1, 5:10, 5:10] == 2).all()
    assert layer.data[1, 0, 0] == 1
    layer.undo()
    assert not layer.data[1, 5:10, 5:10].any()
