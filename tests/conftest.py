import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

# Never reach for the network from tests (pretrained weights come from files the tests write).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is available here")
    for item in items:
        if item.get_closest_marker("gpu") is not None and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # napari's make_napari_viewer fixture reads item.rep_call to decide whether
    # to check for leaked widgets; napari's own conftest sets it, so do we.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _dask_scheduler():
    dask = sys.modules.get("dask")
    return None if dask is None else dask.config.get("scheduler", None)


@pytest.fixture(autouse=True)
def _dask_scheduler_left_as_found():
    """A test that leaves dask's process-wide scheduler changed (a distributed Client
    left as the default) fails here, and the scheduler is put back, rather than the
    unrelated tests after it failing or hanging on a Client that no longer exists."""
    before = _dask_scheduler()
    yield
    after = _dask_scheduler()
    if after != before:
        config = sys.modules["dask"].config.config
        if before is None:
            config.pop("scheduler", None)
        else:
            config["scheduler"] = before
        pytest.fail(f"the test left dask's scheduler set to {after!r} (was {before!r})")


def touching_discs(shape=(96, 128), n=24, radius=(5.0, 9.0), seed=0):
    """Instance labels of ``n`` discs (balls for a 3D ``shape``), many touching, one id
    each (a disc cut in two by another: two objects), and a noisy image of them."""
    from skimage.measure import label

    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    grid = np.indices(shape)
    for i in range(1, n + 1):
        centre = rng.uniform(0, shape)
        distance = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
        labels[distance < rng.uniform(*radius) ** 2] = i
    labels = label(labels, connectivity=len(shape)).astype(np.uint16)
    image = (labels > 0) + rng.normal(0, 0.2, shape).astype(np.float32)
    return image.astype(np.float32), labels


@pytest.fixture
def make_instances():
    """:func:`touching_discs`: instance labels and their image."""
    return touching_discs


def write_dicom_series(
    folder,
    volume,
    *,
    spacing=(2.5, 0.8, 0.7),
    origin=(-40.0, -60.0, 12.0),
    series_uid=None,
    description="axial",
    intercept=-1024.0,
    names=None,
    orientation=((1, 0, 0), (0, 1, 0)),
):
    """Write ``volume`` (slice, row, column) as single-frame CT DICOM files, axial by
    default (``orientation``: the row and column directions in LPS, +x and +y), slices
    along their normal from ``origin`` (LPS, mm). Files are named in shuffled order
    so that readers must sort by position."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study = generate_uid()
    dz, dy, dx = spacing
    order = np.random.default_rng(0).permutation(len(volume))
    for k, plane in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = names[k] if names else f"IM{order[k]:04d}.dcm"
        ds = FileDataset(str(folder / name), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
        ds.SeriesDescription, ds.Modality = description, "CT"
        ds.InstanceNumber = int(order[k]) + 1
        ds.ImageOrientationPatient = [*orientation[0], *orientation[1]]
        ds.ImagePositionPatient = list(np.add(origin, k * dz * np.cross(*orientation)))
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
        ds.PixelData = np.ascontiguousarray(plane, dtype=np.int16).tobytes()
        ds.save_as(folder / name, enforce_file_format=True)
    return series_uid


def tilt_dicom_series(folder, shift):
    """Move each slice of the axial series in ``folder`` ``shift`` mm further down its
    columns (+y, LPS) than the slice below it: a CT acquired with a gantry tilt, its
    slices sheared. Only ImagePositionPatient changes."""
    import pydicom

    def height(path):
        return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])

    for k, path in enumerate(sorted(folder.iterdir(), key=height)):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + k * shift, z]
        ds.save_as(path)


@pytest.fixture
def tilt_series():
    """:func:`tilt_dicom_series`, for tests of gantry-tilted CT series."""
    return tilt_dicom_series


@pytest.fixture
def dicom_series():
    """:func:`write_dicom_series`, for tests that build DICOM folders."""
    return write_dicom_series


#: Enhanced MR Image Storage: one file, a frame per slice (and per echo).
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def write_enhanced_dicom(
    path, frames, positions, *, spacing, intercept=-1024.0, echo_times=None, series_uid=None
):
    """One Enhanced MR file of ``frames`` (n, rows, columns), axial, frame k at LPS
    ``positions[k]``; spacing, orientation and rescale shared by every frame (as
    scanners write them), the echo time per frame when given."""
    import numpy as np
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_MR
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_MR, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), series_uid or generate_uid()
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber = "MR", "enhanced", 3
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    measures, plane, rescale, shared = Dataset(), Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = list(spacing[1:]), spacing[0]
    plane.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 1, intercept, "US"
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = [measures], [plane]
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for k, where in enumerate(positions):
        groups, position = Dataset(), Dataset()
        position.ImagePositionPatient = list(where)
        groups.PlanePositionSequence = [position]
        if echo_times is not None:
            echo = Dataset()
            echo.EffectiveEchoTime = echo_times[k]
            groups.MREchoSequence = [echo]
        per_frame.append(groups)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = np.ascontiguousarray(frames, dtype=np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def enhanced_dicom():
    """:func:`write_enhanced_dicom`, for tests of enhanced multi-frame images."""
    return write_enhanced_dicom


def write_dicom_seg(path, series, masks, names, *, colors=None, fractional=False):
    """Write a DICOM SEG (highdicom) of the series in the folder ``series``: ``masks``
    ``(slice, row, column, segment)`` in the series' slice order (by position), a
    segment per ``names`` entry, numbered from 1; frames without a segment left out,
    as highdicom does by default."""
    import highdicom as hd
    import numpy as np
    import pydicom
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(f) for f in sorted(series.iterdir())]
    sources.sort(key=lambda ds: float(np.dot(ds.ImagePositionPatient,
                                             np.cross(*np.reshape(ds.ImageOrientationPatient,
                                                                  (2, 3))))))  # fmt: skip
    frame = pydicom.uid.generate_uid()
    for ds in sources:  # what a SEG copies from its source images
        ds.FrameOfReferenceUID = frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^P", "1", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "000000", "1", "1"
        ds.ReferringPhysicianName, ds.Manufacturer, ds.SeriesNumber = "", "test", 1
    described = [
        hd.seg.SegmentDescription(
            segment_number=n + 1,
            segment_label=name,
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            display_color=None if colors is None else hd.color.CIELabColor.from_rgb(*colors[n]),
        )
        for n, name in enumerate(names)
    ]
    kind = hd.seg.SegmentationTypeValues
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=masks,
        segmentation_type=kind.FRACTIONAL if fractional else kind.BINARY,
        segment_descriptions=described,
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
        **({"max_fractional_value": 100} if fractional else {}),
    )
    seg.save_as(path)
    return path


@pytest.fixture
def dicom_seg():
    """:func:`write_dicom_seg`, for tests that read DICOM SEG files."""
    return write_dicom_seg


class CliChild:
    """``napari-seg ARGV`` in a child process, its output read as it comes (so a test can
    wait for a line, then press Ctrl+C)."""

    ENTRY = "import sys; from napari_seg.cli import main; sys.exit(main(sys.argv[1:]))"

    def __init__(self, argv) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self.ENTRY, *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stdout, self.stderr = bytearray(), bytearray()
        pairs = ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        self._readers = [
            threading.Thread(target=self._pump, args=pair, daemon=True) for pair in pairs
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream, into: bytearray) -> None:
        while chunk := stream.read1(4096):
            into.extend(chunk)

    def wait_until(self, condition, what: str, timeout: float = 120.0, poll: float = 0.02) -> None:
        """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"the command ended before {what}: {self.tail()}"
            assert time.monotonic() < deadline, f"no {what} within {timeout} s: {self.tail()}"
            time.sleep(poll)

    def tail(self, chars: int = 2000) -> str:
        """The end of what the command printed so far (for failure messages)."""
        return f"stdout: ...{self.out[-chars:]!r} stderr: ...{self.err[-chars:]!r}"

    @property
    def out(self) -> str:
        """What the command printed on stdout so far."""
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        """What the command printed on stderr so far."""
        return self.stderr.decode(errors="replace")

    def interrupt(self) -> None:
        """Ctrl+C."""
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 120.0) -> int:
        """Wait for the command to end; its exit status (the output is then complete)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s: {self.tail()}") from None
        for reader in self._readers:
            reader.join()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def cli_child():
    """``cli_child(argv)``: a :class:`CliChild`, killed at the end of the test."""
    children = []

    def start(argv) -> CliChild:
        children.append(CliChild(argv))
        return children[-1]

    yield start
    for child in children:
        child.kill()


@pytest.fixture
def oblique_volume(tmp_path):
    """An oblique NIfTI in micrometres (turned 37 degrees about z), read: its ``(z, y,
    x)`` array, geometry and RAS affine, for writers that must keep any grid."""
    import nibabel as nib

    from napari_seg.medical import read_volume

    turn = np.array([[0.8, -0.6, 0], [0.6, 0.8, 0], [0, 0, 1.0]])
    ras = np.eye(4)
    ras[:3, :3] = turn @ np.diag([0.5, 0.6, 2.0])
    ras[:3, 3] = [-10.0, 5.0, 3.0]
    voxels = np.random.default_rng(0).integers(0, 1000, (7, 6, 5)).astype(np.int16)
    image = nib.Nifti1Image(voxels, ras)
    image.header.set_xyzt_units("micron")
    nib.save(image, tmp_path / "obl.nii.gz")
    array, geometry = read_volume(tmp_path / "obl.nii.gz")
    return array, geometry, ras
