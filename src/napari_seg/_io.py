"""Reading images lazily and writing label files atomically (Qt-free, for the CLI)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._atomic import atomic_write

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INPUT_KINDS = "TIFF, PNG, JPEG, NumPy .npy or zarr"


def read_image(path: str | os.PathLike):
    """Open an image for reading, lazily where the format allows.

    TIFF files are memory-mapped when uncompressed (else opened through
    tifffile's zarr interface, read by region), ``.npy`` files are
    memory-mapped without pickle, zarr arrays are opened read-only, PNG and
    JPEG are read whole.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the format is not supported or the file cannot be read as an image.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(path)
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if suffix == ".zarr" or (path.is_dir() and _is_zarr(path)):
            return _read_zarr(path)
        if suffix in IMAGE_SUFFIXES:
            import imageio.v3 as iio

            return iio.imread(path)
    except (ValueError, OSError, KeyError) as exc:
        raise ValueError(f"cannot read {path} as an image: {exc}") from exc
    raise ValueError(f"unsupported input {path}: expected {INPUT_KINDS}")


def _read_tiff(path: Path):
    import tifffile

    try:
        return tifffile.memmap(path, mode="r")
    except ValueError:  # compressed or tiled: read by region through zarr
        import zarr

        store = tifffile.imread(path, aszarr=True)
        array = zarr.open(store, mode="r")
        if not hasattr(array, "shape"):  # a pyramid: use the full-resolution level
            array = array[0]
        return array


def _read_zarr(path: Path):
    import zarr

    array = zarr.open(str(path), mode="r")
    if not hasattr(array, "shape"):
        raise ValueError(f"{path} is a zarr group, not an array; give the array's path")
    return array


def _is_zarr(path: Path) -> bool:
    return any((path / name).exists() for name in (".zarray", "zarr.json", ".zgroup"))


def output_stem(path: str | os.PathLike) -> str:
    """The input's name without its suffixes (``a.ome.tif`` gives ``a``)."""
    name = Path(path).name
    return name.split(".", 1)[0] or name


def write_tiff(path: str | os.PathLike, array, **kwargs) -> None:
    """Write ``array`` as a TIFF atomically (BigTIFF when large), zlib-compressed."""
    import tifffile

    with atomic_write(path) as handle:
        tifffile.imwrite(handle, np.asarray(array), compression="zlib", **kwargs)
