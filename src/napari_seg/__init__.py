"""napari-seg: deep-learning semantic segmentation for napari.

Importing this package imports neither torch nor Qt; see ``napari_seg.models``
for the model zoo and ``napari_seg.cli`` for the ``napari-seg`` command.
"""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("napari-seg")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

from ._device import DeviceError, describe_device, list_devices, resolve_device

__all__ = ["DeviceError", "__version__", "describe_device", "list_devices", "resolve_device"]
