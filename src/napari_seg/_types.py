"""Type aliases of the core's signatures (no runtime dependencies beyond numpy)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy.typing as npt


class RegionArray(Protocol):
    """An array read region by region: numpy, a memory map, dask or zarr.

    Anything with a ``shape``, a ``dtype`` and numpy-style indexing that returns
    something ``numpy.asarray`` accepts.
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> Any: ...

    def __getitem__(self, index: Any) -> Any: ...


#: Label ids (or any array) that numpy turns into an ndarray.
ArrayLike = npt.ArrayLike
