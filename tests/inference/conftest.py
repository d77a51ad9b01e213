import pytest


class CountingArray:
    """An array-like that records the size of every region read from it."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.reads: list[int] = []

    def __getitem__(self, index):
        block = self.data[index]
        self.reads.append(block.size)
        return block


@pytest.fixture
def counting_array():
    """The :class:`CountingArray` class, to wrap arrays whose reads a test checks."""
    return CountingArray
