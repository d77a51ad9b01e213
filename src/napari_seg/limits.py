"""Upper bounds on everything a file, a config or a user can ask for.

Every number a job reads from outside (a model card, a config file, a flag,
a widget field) is checked against a bound here before anything derived from it
is allocated, so a hostile or mistaken value fails at once with a message that
names it, instead of exhausting memory or time. The bounds sit far above what
real models and runs use; docs/limits.md lists them with their reasons.
"""

from __future__ import annotations

import reprlib

MIB = 2**20
GIB = 2**30

# -- model files -----------------------------------------------------------------------
#: Classes of one model, background included (TotalSegmentator, the largest public
#: semantic model we know of, has 118). Inference keeps ``classes x tile x width``
#: floats per band, so this also bounds its memory.
MAX_CLASSES = 1024
#: Label ids a training run accepts (0 to this - 1) unless its config or the model it
#: fine-tunes states more classes (``MAX_CLASSES`` at most): more ids usually mean an
#: image or an instance segmentation was passed as class labels.
MAX_UNSTATED_CLASSES = 256
#: Input channels of one model (hyperspectral stacks stay well below).
MAX_IN_CHANNELS = 256
#: Channels a new model reads from an image axis its labels lack, no one having
#: stated them (a CYX layer painted with YX labels); a longer axis is more likely a
#: stack's depth or time, and the run asks for the channel axis instead.
MAX_UNSTATED_CHANNELS = 16
#: Characters in one class name.
MAX_NAME_LENGTH = 200
#: Bytes of a model file's header (tensor table + model card with its training history).
MAX_HEADER_BYTES = 64 * MIB
#: Tensors in one model file (a ResNet-101 U-Net with optimizer state has about 2,500).
MAX_TENSORS = 100_000
#: Dimensions of one tensor.
MAX_TENSOR_NDIM = 8
#: Entries a zip's directory may list for their names to be read when it is offered
#: as a model file (a bioimage.io package holds tens; ``zipfile`` keeps about a
#: kilobyte per entry): a larger one is named a zip archive, its directory unread.
MAX_ZIP_ENTRIES = 10_000

# -- job files ----------------------------------------------------------------------------
#: Bytes of a JSON or YAML config / pipeline file.
MAX_CONFIG_BYTES = 16 * MIB
#: Characters of an error message shown to the user.
MAX_MESSAGE_CHARS = 2000

# -- images ------------------------------------------------------------------------------
#: Bytes of one decompressed chunk (a TIFF strip or tile, a zarr chunk): images are
#: read region by region, so a chunk bigger than this (e.g. a whole slide in one
#: strip) would have to be decompressed whole for any region.
MAX_CHUNK_BYTES = 1 * GIB
#: A label file stored as floats or booleans is read whole to turn its ids into
#: integers (``_io.read_labels``) only up to this many bytes; a larger lazy one
#: (zarr, a tiled TIFF) keeps its dtype and is refused by name.
MAX_LABELS_CONVERT_BYTES = 1 * GIB
#: Computed chunks of dask images kept while a prediction (or a training run) reads them
#: (``arrays.chunk_cache``; also at most a quarter of the memory available then): a
#: chunk behind a costly graph (a filter over a whole plane) is computed once, not
#: once per tile (or training patch) that touches it.
MAX_CHUNK_CACHE_BYTES = 1 * GIB
#: A compressed medical volume (``.nii.gz``, DICOM) is decompressed whole: its header may
#: not claim more than this (a 1024^3 float32 CT is 4 GiB).
MAX_VOLUME_BYTES = 16 * GIB
#: A case's ``dataset.json`` names at most this many channels.
MAX_NIFTI_CHANNELS = 64
#: A DICOM folder with more files than this is refused (a series is a few thousand slices).
MAX_DICOM_FILES = 20_000
#: napari's reader looks for DICOM series this many folder levels below the folder it
#: opens (a CD export's DICOM/PA*/ST*/SE* is four), in at most this many folders.
DICOM_SEARCH_DEPTH, DICOM_SEARCH_FOLDERS = 4, 256
#: Resolution levels of an OME-Zarr image (each level halves a side: 64 levels would
#: start from 2^64 pixels).
MAX_LEVELS = 64

#: A voxel's size along an axis, in any unit: nanometres to kilometres fit, and squared
#: distances and volumes stay finite (a spacing of 1e200 overflowed a voxel's volume).
MIN_SPACING, MAX_SPACING = 1e-12, 1e12

# -- inference ------------------------------------------------------------------------
#: An image is resampled to a model's spacing at most this many times finer along an
#: axis: more is nearly always a unit mix-up (a spacing of 1000 in micrometres for a
#: model in millimetres would make 10^9 times the voxels).
MAX_UPSAMPLE = 16
#: Tile side in pixels.
MAX_TILE = 16384
#: Tiles per forward pass.
MAX_TILE_BATCH = 1024
#: Pixels per forward pass (batch x tile x tile): 256 Mpixel, about 1 GiB per
#: float32 channel of the input alone.
MAX_BATCH_PIXELS = 2**28

# -- training ----------------------------------------------------------------------------
#: Patches per training step.
MAX_BATCH = 1024
#: Patch side in pixels.
MAX_PATCH = 4096
#: Pixels per training step (batch x patch x patch): 64 Mpixel; the network's
#: activations and their gradients take tens of bytes per pixel and channel.
MAX_STEP_PIXELS = 2**26
#: torch CPU threads.
MAX_THREADS = 256
#: Side of a block of a block-wise run (``--block``): a block's labels are gathered in
#: memory before they are written (65536^2 uint8 labels are 4 GiB).
MAX_BLOCK = 65536
#: Worker processes of a local Dask cluster (``--cluster local:N``, Segment's "workers"):
#: each loads torch and the model (about 1 GiB here).
MAX_WORKERS = 256
#: Jobs a cluster config file may ask its queue for (``napari-seg: {jobs: N}``).
MAX_JOBS = 10_000
#: Budget and schedule counters.
MAX_EPOCHS = 1_000_000
MAX_STEPS_PER_EPOCH = 1_000_000
MAX_MINUTES = 1_000_000.0
#: Random seed (numpy and torch both take 32-bit seeds everywhere).
MAX_SEED = 2**32 - 1
#: Array axes an axis option may name (numpy allows 64 dimensions).
MAX_AXIS = 63

# -- evaluation ---------------------------------------------------------------------------
#: Classes of one confusion matrix: beyond this a dense matrix stops making sense (the
#: labels are an instance image; the instance scores serve those).
MAX_CONFUSION_CLASSES = 4096

# -- refine -------------------------------------------------------------------------------
#: Radius of a morphology footprint; a 3D ball of this radius has 17 million voxels.
MAX_RADIUS = 128
#: Minimum distance between watershed seeds (the peak search uses a footprint of that size).
MAX_MIN_DISTANCE = 128
#: CRF window radius: (2r + 1)^d kernel weights per pixel.
MAX_CRF_RADIUS = 32
#: Mean-field iterations.
MAX_CRF_ITERATIONS = 1000


_brief = reprlib.Repr()
_brief.maxstring = 60
_brief.maxother = 60
_brief.maxlist = _brief.maxtuple = _brief.maxdict = _brief.maxset = 8
_brief.maxlevel = 3


def brief(value: object) -> str:
    """A short ``repr`` of ``value`` for error messages (long or deep values are cut).

    Parameters
    ----------
    value : object

    Returns
    -------
    str
    """
    return _brief.repr(value)


def one_line(message: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` as one line of at most ``limit`` characters, for a notification or
    stderr (a message over several lines has its line breaks and indents made spaces).

    Parameters
    ----------
    message : object
        A string or an exception.
    limit : int

    Returns
    -------
    str
    """
    text = str(message)
    if "\n" in text:
        text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 25] + f"... ({len(text)} characters)"
    return text
