"""Segment dock, "run on": sending a job to a Dask cluster that writes OME-Zarr, and
opening the result lazily as a multiscale Labels layer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, SpinBox

from .._paths import user_path
from ..limits import MAX_BLOCK, MAX_WORKERS
from ._fields import is_empty_file_field

WHERE_CHOICES = (
    ("this process", "here"),
    ("a local Dask cluster", "local"),
    ("a Dask scheduler (address)", "address"),
)


class ClusterPanel:
    """The fields that send a Segment job to a cluster instead of this process."""

    def __init__(self) -> None:
        self.where = ComboBox(label="run on", choices=WHERE_CHOICES, value="here")
        self.workers = SpinBox(label="workers", min=1, max=MAX_WORKERS, value=os.cpu_count() or 1)
        self.address = LineEdit(label="scheduler", value="tcp://localhost:8786")
        self.output = FileEdit(label="OME-Zarr output", mode="w", filter="*.ome.zarr")
        self.block = SpinBox(label="block (pixels)", min=0, max=MAX_BLOCK, step=256, value=0,
                             tooltip="0: 8192 for planes, 512 for volumes")  # fmt: skip
        self.container = Container(
            widgets=[self.where, self.workers, self.address, self.output, self.block],
            labels=True,
        )
        self.where.changed.connect(self._sync)
        self._sync()

    @property
    def remote(self) -> bool:
        """Whether the job goes to a cluster."""
        return self.where.value != "here"

    def cluster_spec(self) -> str:
        """``local:N`` or the scheduler's address, for :func:`scaleout.cluster.connect`."""
        if self.where.value == "local":
            return f"local:{self.workers.value}"
        return str(self.address.value).strip()

    def output_path(self) -> Path:
        """The chosen ``.ome.zarr`` folder (the suffix added when missing)."""
        path = user_path(self.output.value)
        return path if path.name.endswith(".ome.zarr") else path.with_name(path.name + ".ome.zarr")

    def _sync(self, *_args) -> None:
        remote = self.remote
        self.workers.visible = self.where.value == "local"
        self.address.visible = self.where.value == "address"
        self.output.visible = remote
        self.block.visible = remote


def check_cluster_job(layer: Any, model_path: Path | None, dirty: bool, output: Path) -> Path:
    """The image file a cluster job reads; ValueError naming what is missing.

    Parameters
    ----------
    layer : napari.layers.Image
    model_path : Path or None
        The current model's file.
    dirty : bool
        Whether the current model has changes not saved to that file.
    output : Path

    Returns
    -------
    Path
        The layer's source file (workers read it themselves).

    Raises
    ------
    ValueError
    """
    if model_path is None or dirty:
        raise ValueError("a cluster loads the model from its file: save the current model first")
    source = getattr(getattr(layer, "source", None), "path", None)
    if not source:
        raise ValueError(
            f"{layer.name!r} was not opened from a file; a cluster reads its input itself "
            "(open a zarr, OME-Zarr or TIFF file, or save the layer first)"
        )
    if is_empty_file_field(output) or output.name == ".ome.zarr":
        raise ValueError("choose an OME-Zarr output folder")
    if output.exists():
        raise ValueError(f"{output} exists; choose a new name (nothing is replaced)")
    return Path(source)


def cluster_job(model_path, source, output, config, spec: str, block: int | None, *, cancel):
    """Worker body: connect, run the blocks, close the cluster; forward the events."""
    from ..scaleout.cluster import connect
    from ..scaleout.run import iter_predict_blocks
    from ._shared import forward_events

    client = connect(spec)
    try:
        events = iter_predict_blocks(model_path, source, output, config, block=block,
                                     client=client)  # fmt: skip
        return (yield from forward_events(events, cancel))
    finally:
        cluster = client.cluster if spec.startswith("local") else None
        client.close()
        if cluster is not None:
            cluster.close()


def open_lazily(path: Path) -> list:
    """The levels of an OME-Zarr label image as dask arrays (nothing read yet).

    Parameters
    ----------
    path : Path

    Returns
    -------
    list of dask.array.Array
        Finest first.
    """
    import dask.array as da

    from ..scaleout.run import open_levels

    return [da.from_zarr(str(path), component=name) for name in open_levels(path)]
