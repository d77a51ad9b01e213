"""The Segment dock's fields: model, tiling, outputs, and the image's resolution levels."""

from __future__ import annotations

from magicgui.widgets import CheckBox, ComboBox, FileEdit, create_widget

from ..inference.config import PRECISIONS
from ..limits import MAX_THREADS
from ._dock import wrapping_label
from ._fields import AutoInt
from ._segment_cluster import ClusterPanel
from ._shared import job_threads

SCOPE_CHOICES = (
    ("current slice", "slice"),
    ("whole stack", "stack"),
    ("visible region", "visible"),
)


class SegmentFields:
    """The Segment dock's fields, made by its ``_make_*_fields`` methods (mixed into
    the dock, whose ``config`` reads them)."""

    _device: ComboBox
    _image: ComboBox

    def _make_model_fields(self) -> None:
        """The image picker and the model's: its summary, file and ensemble members."""
        self._image = create_widget(annotation="napari.layers.Image", label="image")
        self._model_info = wrapping_label("model")
        self._model_path = FileEdit(label="model file", mode="r", filter="*.safetensors")
        self._members = FileEdit(
            label="average with",
            mode="rm",
            filter="*.safetensors",
            tooltip="other model files whose probabilities are averaged with the current "
            "model's, as nnU-Net averages its folds (an ensemble); they must share its "
            "classes, input channels, normalisation and voxel size",
        )

    def _make_tiling_fields(self) -> None:
        """How a run tiles the image: tile, overlap, batch and CPU threads (auto: chosen
        for the device, shown after a run)."""
        self._tile = AutoInt(
            "tile",
            min=32,
            max=8192,
            step=32,
            start=512,
            tooltip=(
                "tile side in pixels (voxels for a 3D model); auto: 512 on a CPU, up to 1024 "
                "on a large GPU, 96 to 160 in 3D, a pixel classifier's 2048 (256 in 3D), "
                "never more than the image; a run shows the tile auto chose here"
            ),
        )
        self._overlap = AutoInt(
            "overlap",
            min=0,
            max=4096,
            step=16,
            start=128,
            tooltip=(
                "overlap between tiles in pixels; auto: a quarter of the tile, or the "
                "context a pixel classifier's filters need"
            ),
        )
        self._batch = AutoInt(
            "batch", min=1, max=256, start=1, tooltip="tiles per forward pass; auto: 1 on CPU"
        )
        self._threads = AutoInt(
            "CPU threads",
            min=1,
            max=MAX_THREADS,
            start=job_threads("segment"),
            tooltip="torch threads of a run on the CPU here; auto: one core fewer than "
            "this machine's, which napari's window keeps so that it never stutters",
        )

    def _make_output_fields(self) -> None:
        """Precision, what is segmented (scope, level), where (cluster) and what the run
        outputs besides the labels."""
        self._precision = ComboBox(label="precision", choices=list(PRECISIONS), value="auto")
        self._scope = ComboBox(
            label="scope",
            choices=SCOPE_CHOICES,
            value="stack",
            tooltip="current slice: the plane on screen (a 3D model: the volume); whole "
            "stack: every slice or volume; visible region: the current one cropped to the "
            "canvas. In napari's 3D view the volume on screen is the current slice",
        )
        self._level = ComboBox(
            label="level",
            choices=self._level_choices,
            value=0,
            tooltip="resolution level of a multiscale image to segment",
        )
        self.cluster = ClusterPanel()
        self._probabilities = CheckBox(text="also output probabilities", value=False)
        self._objects = CheckBox(
            text="also output objects",
            value=False,
            tooltip="a Labels layer of the objects, each its own id: objects from boundaries "
            "for a model trained on instance labels with boundaries, else the connected "
            "components of every class but the background; slice by slice for a stack "
            "segmented slice by slice",
        )
        self._tta = CheckBox(
            text="test-time mirroring",
            value=False,
            tooltip="as nnU-Net predicts: each tile also runs flipped along every "
            "combination of its axes and the probabilities are averaged; 4x slower "
            "in 2D, 8x in 3D, usually a little more accurate",
        )
        self._update = CheckBox(text="update the previous output layer", value=True)

    def _chosen_level(self, layer) -> int:
        return int(self._level.value) if getattr(layer, "multiscale", False) else 0

    def _level_choices(self, _widget=None) -> list[tuple[str, int]]:
        """The chosen image's resolution levels (napari's reset_choices calls this)."""
        layer = getattr(self, "_image", None) and self._image.value
        levels = len(layer.data) if getattr(layer, "multiscale", False) else 1
        return [("0 (full resolution)", 0), *((str(i), i) for i in range(1, levels))]
