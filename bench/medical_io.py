"""Medical volumes: how long writing labels and probabilities, and reading them back,
takes in each format napari-seg writes (NIfTI ``.nii.gz``, NRRD ``.nrrd``,
MetaImage ``.mha``), and how large the files are.

Prints one JSON line per format and array:

- ``labels``: a 200x512x512 uint8 label map of three classes (two boxes and a
  ball), as ``predict`` writes it;
- ``probabilities``: 3 smooth float32 class maps of 100x256x256.

Each on the grid of an RAS-stored NIfTI (0.7 x 0.7 x 2.5 mm, the voxel order
napari-seg flips to LPS) and of an LPS-stored one; median of ``--repeats`` runs.
MetaImage needs the ``metaimage`` extra (SimpleITK) and NRRD pynrrd: a format whose
library is missing is left out with a note.

``--cases dicom``: reading a CT series of ``--slices`` 512x512 int16 slices (rescale
intercept -1024, as CT scanners write them) as napari and every command read it:
median time, the array's type and size, and the peak resident memory above what the
process held before (``VmHWM`` after resetting it, Linux only).

Usage: python bench/medical_io.py [--repeats 3] [--cases files,dicom] [--slices 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_seg.medical import VolumeGeometry, read_volume, write_volume

FORMATS = (".nii.gz", ".nrrd", ".mha")
GRIDS = {"RAS": (0.7, 0.7, 2.5), "LPS": (-0.7, -0.7, 2.5)}


def label_map(shape=(200, 512, 512)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[50:150, 100:400, 100:400] = 1
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    labels[(z - 100) ** 2 + (y - 250) ** 2 + (x - 250) ** 2 < 60**2] = 2
    return labels


def probability_maps(shape=(100, 256, 256), classes=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = ndi.gaussian_filter(rng.random((classes, *shape)).astype(np.float32), (0, 4, 4, 4))
    scores = np.exp(20 * logits)
    return (scores / scores.sum(axis=0)).astype(np.float32)


def median_s(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_ct(folder: Path, slices: int) -> None:
    """An axial CT series of ``slices`` 512x512 slices: stored 0..3000, intercept -1024."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-180.0, -200.0, 12.0 + 2.5 * k]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.5
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = rng.integers(0, 3000, (512, 512)).astype(np.int16).tobytes()
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)


def peak_mib() -> float:
    """The process' peak resident memory (``VmHWM``), MiB."""
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def dicom_case(slices: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        write_ct(Path(folder) / "ct", slices)
        read_volume(Path(folder) / "ct")  # the readers' imports, the files cached
        times, peaks = [], []
        for _ in range(repeats):
            reset_peak()
            before = peak_mib()
            start = time.perf_counter()
            array, _ = read_volume(Path(folder) / "ct")
            times.append(time.perf_counter() - start)
            peaks.append(peak_mib() - before)
            del array
        array, _ = read_volume(Path(folder) / "ct")
        row = {
            "case": "dicom",
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "array_mib": round(array.nbytes / 2**20),
            "read_s": round(statistics.median(times), 3),
            "peak_extra_mib": round(statistics.median(peaks)),
        }
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="files,dicom")
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    cases = args.cases.split(",")
    if "dicom" in cases:
        dicom_case(args.slices, args.repeats)
    if "files" in cases:
        files_case(args.repeats)


def files_case(repeats: int) -> None:
    arrays = {"labels": label_map(), "probabilities": probability_maps()}
    with tempfile.TemporaryDirectory() as folder:
        for grid, steps in GRIDS.items():
            for what, array in arrays.items():
                shape = array.shape[-3:][::-1]  # the file's (i, j, k)
                geometry = VolumeGeometry.from_affine(np.diag([*steps, 1.0]), shape)
                for suffix in FORMATS:
                    path = Path(folder) / f"{what}{suffix}"
                    try:
                        write = median_s(
                            lambda p=path, a=array, g=geometry: write_volume(
                                p, a, g, overwrite=True
                            ),
                            repeats,
                        )
                    except ValueError as exc:  # a library the format needs is missing
                        print(json.dumps({"format": suffix, "skipped": str(exc)}))
                        continue
                    read = median_s(lambda p=path: np.asarray(read_volume(p)[0]), repeats)
                    same = bool(np.array_equal(read_volume(path)[0], array))
                    row = {
                        "case": what,
                        "grid": grid,
                        "format": suffix,
                        "shape": list(array.shape),
                        "write_s": round(write, 3),
                        "read_s": round(read, 3),
                        "file_mib": round(os.path.getsize(path) / 2**20, 2),
                        "round_trip_equal": same,
                    }
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
