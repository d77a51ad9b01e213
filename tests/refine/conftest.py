"""Helpers for the refine tests: every call also checks that the input is untouched."""

import numpy as np
import pytest


def call_unchanged(fn, labels, *args, **kwargs):
    """``fn(labels, *args, **kwargs)``; fails if ``labels`` changed or the result shares memory."""
    before = labels.copy()
    out = fn(labels, *args, **kwargs)
    np.testing.assert_array_equal(labels, before)
    assert not np.shares_memory(out, labels)
    return out


@pytest.fixture
def unchanged():
    return call_unchanged
