import os

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
):
    """Write ``volume`` (slice, row, column) as single-frame CT DICOM files, axial
    (row direction +x, column direction +y in LPS), slices along +z from ``origin``
    (LPS, mm). Files are named in shuffled order so that readers must sort by position."""
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
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * dz]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
        ds.PixelData = np.ascontiguousarray(plane, dtype=np.int16).tobytes()
        ds.save_as(folder / name, enforce_file_format=True)
    return series_uid


@pytest.fixture
def dicom_series():
    """:func:`write_dicom_series`, for tests that build DICOM folders."""
    return write_dicom_series
