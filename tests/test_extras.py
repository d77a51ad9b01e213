"""An optional part used without its extra: one line naming what to install, on the
command line as in Python, and nothing written."""

import pickle
import sys

import numpy as np
import pytest
import tifffile

from napari_seg._extras import MissingExtraError
from napari_seg.cli import main
from napari_seg.models import ModelSpec, create_model, save_model


@pytest.fixture
def model_and_image(tmp_path):
    model = tmp_path / "m.safetensors"
    save_model(create_model(ModelSpec("unet", 1, 2, options={"depth": 2, "base_width": 4})), model)
    image = tmp_path / "cells.tif"
    tifffile.imwrite(image, np.random.default_rng(0).random((32, 32), dtype=np.float32))
    return model, image


def _one_line_error(capsys, words: str) -> None:
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_error_survives_a_child_process():
    error = MissingExtraError("x", "a library", "extra", instead="or do y")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is MissingExtraError
    assert isinstance(back, ImportError)
    assert str(back) == str(error) == "x needs a library: pip install 'napari-seg[extra]' (or do y)"
    assert back.extra == "extra"


def test_a_cluster_without_distributed(model_and_image, tmp_path, capsys, monkeypatch):
    model, image = model_and_image
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes its import fail
    # An environment without the OME-Zarr libraries would stop at them first.
    monkeypatch.setattr("napari_seg.scaleout.omezarr.check_available", lambda: None)
    out = tmp_path / "out"
    argv = ["predict", "--model", str(model), "--cluster", "local:1", "--output", str(out)]
    assert main([*argv, str(image)]) == 1
    _one_line_error(capsys, "a cluster needs distributed: pip install 'napari-seg[cluster]'")
    assert not out.exists()


def test_ome_zarr_output_without_ome_zarr(model_and_image, tmp_path, capsys, monkeypatch):
    model, image = model_and_image
    monkeypatch.setitem(sys.modules, "ome_zarr", None)
    out = tmp_path / "out"
    argv = ["predict", "--model", str(model), "--output-format", "ome-zarr", "--output", str(out)]
    assert main([*argv, str(image)]) == 1
    _one_line_error(capsys, "OME-Zarr output needs zarr>=3, ome-zarr and ome-zarr-models")
    assert not out.exists()  # checked before the output folder is made


def test_contour_filling_without_itk(tmp_path, capsys, monkeypatch):
    # The method runs in a spawned child process, which takes this process's path:
    # an ``itk`` package first on it that fails to import.
    fake = tmp_path / "fake"
    (fake / "itk").mkdir(parents=True)
    (fake / "itk" / "__init__.py").write_text("raise ImportError('no ITK here')\n")
    monkeypatch.syspath_prepend(str(fake))
    outlines = np.zeros((9, 24, 24), np.uint8)
    outlines[::4, 6:16, 6:16] = 1
    tifffile.imwrite(tmp_path / "outlines.tif", outlines)
    out = tmp_path / "filled.tif"
    argv = ["refine", "--op", "interpolate_slices", "--method", "contour", "--quiet"]
    assert main([*argv, str(tmp_path / "outlines.tif"), str(out)]) == 1
    _one_line_error(capsys, "pip install 'napari-seg[interpolation]' (or use method 'shape'")
    assert not out.exists()


def test_an_nrrd_file_without_pynrrd(model_and_image, tmp_path, capsys, monkeypatch):
    model, _ = model_and_image
    (tmp_path / "case.nrrd").write_bytes(b"NRRD0004\n")
    monkeypatch.setitem(sys.modules, "nrrd", None)
    out = tmp_path / "out"
    assert (
        main(["predict", "--model", str(model), "--output", str(out), str(tmp_path / "case.nrrd")])
        == 1
    )
    err = capsys.readouterr().err
    assert "reading NRRD needs pynrrd: pip install 'napari-seg[medical]'" in err
    assert "Traceback" not in err
    assert not (out / "case_labels.nii.gz").exists()


@pytest.mark.parametrize(
    ("module", "name", "message"),
    [
        ("nibabel", "brain.nii.gz", "reading NIfTI needs nibabel"),
        ("pydicom", "slice.dcm", "reading DICOM needs pydicom"),
        ("SimpleITK", "ct.mha", "reading MetaImage needs SimpleITK"),
    ],
)
def test_medical_files_without_their_reader(tmp_path, monkeypatch, module, name, message):
    from napari_seg._io import read_with_geometry

    (tmp_path / name).write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 100)
    monkeypatch.setitem(sys.modules, module, None)
    extra = "metaimage" if module == "SimpleITK" else "medical"
    with pytest.raises(ValueError, match=rf"{message}: pip install 'napari-seg\[{extra}\]'"):
        read_with_geometry(tmp_path / name)
