"""DICOM RT structure sets: how long reading one as a label map takes, and how its
contour fill compares with scikit-image's ``draw.polygon`` on the same contours.

A CT series of ``--slices`` x 512 x 512 (zero pixels, axial, 0.7 x 0.8 x 2.5 mm) and
an RTSTRUCT of ``--rois`` ROIs, each a 200-point circle on 100 slices, are written to a
temporary folder. Prints one JSON line per case, median of ``--repeats`` runs:

- ``read``: ``medical.read_volume`` of the RTSTRUCT (header, series found beside it,
  contours parsed, filled, ROIs merged);
- ``fill polygon_mask``: napari-seg's scanline fill of every contour alone;
- ``fill skimage.draw.polygon``: scikit-image's fill of the same contours; both count
  the voxels filled (these circles have vertices exactly on pixel rows, where the two
  may decide a tie apart; on general polygons the tests find the same pixels);
- ``write``: ``medical.write_rtstruct`` of the label map read (contours traced by
  marching squares, the series' headers read, the file written), and whether reading
  that file back gives the same label map (``same``), with its contour count.

Usage: python bench/rtstruct.py [--rois 20] [--slices 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_seg import medical
from napari_seg.medical import read_volume
from napari_seg.medical._rtstruct import polygon_mask

SPACING, ORIGIN, SIZE = (2.5, 0.8, 0.7), (-180.0, -200.0, 12.0), 512


def write_series(folder: Path, slices: int) -> str:
    """An axial CT series of zero pixels; its SeriesInstanceUID."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    pixels = np.zeros((SIZE, SIZE), np.int16).tobytes()
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
            CTImageStorage,
            generate_uid(),
        )
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SPACING[0]]
        ds.PixelSpacing, ds.SliceThickness = [SPACING[1], SPACING[2]], SPACING[0]
        ds.Rows = ds.Columns = SIZE
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = pixels
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
    return series


def circles(rois: int, slices: int) -> list[list[tuple[int, np.ndarray, np.ndarray]]]:
    """Per ROI, its contours as (slice, rows, columns) in pixel indices."""
    theta = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    out = []
    for n in range(rois):
        centre, radius = 100 + 15 * n, 20 + 3 * n
        first = slices // 6
        out.append([(k, centre + radius * np.sin(theta), centre + radius * np.cos(theta))
                    for k in range(first, min(slices, first + 100))])  # fmt: skip
    return out


def write_rtstruct(path: Path, series: str, rois) -> None:
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop = "1.2.840.10008.5.1.4.1.1.481.3"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = (
        sop,
        meta.MediaStorageSOPInstanceUID,
        "RTSTRUCT",
    )
    frame, study, referenced = Dataset(), Dataset(), Dataset()
    referenced.SeriesInstanceUID = series
    study.RTReferencedSeriesSequence = [referenced]
    frame.FrameOfReferenceUID, frame.RTReferencedStudySequence = generate_uid(), [study]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    ds.StructureSetROISequence, ds.ROIContourSequence = [], []
    for n, contours in enumerate(rois):
        roi, drawn = Dataset(), Dataset()
        roi.ROINumber, roi.ROIName = n + 1, f"roi {n}"
        drawn.ReferencedROINumber, drawn.ROIDisplayColor = n + 1, [200, 10 * n, 0]
        drawn.ContourSequence = []
        for k, rows, cols in contours:
            contour = Dataset()
            contour.ContourGeometricType, contour.NumberOfContourPoints = "CLOSED_PLANAR", len(rows)
            x, y = ORIGIN[0] + cols * SPACING[2], ORIGIN[1] + rows * SPACING[1]
            z = np.full(len(rows), ORIGIN[2] + k * SPACING[0])
            contour.ContourData = [round(float(v), 4) for v in np.c_[x, y, z].ravel()]
            drawn.ContourSequence.append(contour)
        ds.StructureSetROISequence.append(roi)
        ds.ROIContourSequence.append(drawn)
    ds.save_as(path, enforce_file_format=True)


def _contours_of(path: Path) -> list:
    import pydicom

    return list(pydicom.dcmread(path).ROIContourSequence)


def median_s(action, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def fill_all(rois, fill) -> int:
    """Voxels inside every contour, filled one contour at a time by ``fill``."""
    return sum(int(fill(rows, cols).sum()) for contours in rois for _, rows, cols in contours)


def main() -> None:
    from skimage.draw import polygon

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rois", type=int, default=20)
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="napari-seg-bench-"))
    try:
        rois = circles(args.rois, args.slices)
        write_rtstruct(folder / "plan.dcm", write_series(folder / "ct", args.slices), rois)
        size = {"rois": args.rois, "contours": sum(map(len, rois)), "points": 200,
                "shape": [args.slices, SIZE, SIZE]}  # fmt: skip
        seconds, (labels, _) = median_s(lambda: read_volume(folder / "plan.dcm"), args.repeats)
        print(json.dumps({"case": "read", **size, "seconds": round(seconds, 3),
                          "labelled_voxels": int((labels > 0).sum())}))  # fmt: skip

        def scikit(rows, cols):
            mask = np.zeros((SIZE, SIZE), bool)
            mask[polygon(rows, cols, (SIZE, SIZE))] = True
            return mask

        ours, ours_count = median_s(
            lambda: fill_all(rois, lambda r, c: polygon_mask(r, c, (SIZE, SIZE))), args.repeats
        )
        theirs, theirs_count = median_s(lambda: fill_all(rois, scikit), args.repeats)
        print(json.dumps({"case": "fill polygon_mask", **size, "seconds": round(ours, 3),
                          "voxels": ours_count}))  # fmt: skip
        print(json.dumps({"case": "fill skimage.draw.polygon", **size, "seconds": round(theirs, 3),
                          "voxels": theirs_count}))  # fmt: skip
        out = folder / "rt" / "written.dcm"
        out.parent.mkdir()
        seconds, _ = median_s(
            lambda: medical.write_rtstruct(out, labels, folder / "ct", overwrite=True), args.repeats
        )
        back, _ = read_volume(out)
        written = sum(len(r.ContourSequence) for r in _contours_of(out))
        megabytes = round(out.stat().st_size / 1e6, 1)
        print(json.dumps({"case": "write", **size, "seconds": round(seconds, 3),
                          "contours_written": written, "megabytes": megabytes,
                          "same": bool(np.array_equal(back, labels))}))  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
