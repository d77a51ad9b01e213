"""Packaging and import boundaries."""

import ast
import pathlib
import subprocess
import sys

import numpy as np

import napari_seg
from napari_seg.sample_data import CLASS_NAMES, cells_2d, cells_3d

PACKAGE = pathlib.Path(napari_seg.__file__).parent
GUI_MODULES = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6")


def test_import_is_cheap():
    code = (
        "import sys, napari_seg, napari_seg.models, napari_seg.cli;"
        "bad = [m for m in ('torch', 'napari', 'qtpy', 'PyQt6', 'magicgui') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_building_the_command_line_imports_no_scientific_stack():
    """Every `napari-seg` call builds the parser (refine's flags included): keep it light."""
    code = (
        "import sys, napari_seg.cli as cli; cli.build_parser();"
        "bad = [m for m in ('torch', 'scipy', 'skimage') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_only_widgets_import_gui_modules():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "_widgets" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in GUI_MODULES]
    assert offenders == []


def test_manifest_is_valid():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-seg")
    assert set(manifest.categories) >= {"Segmentation", "Annotation"}
    assert {w.display_name for w in manifest.contributions.widgets} >= {"Model"}
    assert len(manifest.contributions.sample_data) >= 2


def test_the_nifti_writer_is_found_by_a_names_last_suffix():
    # npe2 before 0.10 (the newest on Python 3.10, with napari 0.7) compares the
    # writers' extensions with Path(name).suffix alone: ".gz" for a .nii.gz name.
    from pathlib import Path

    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-seg")
    [writer] = [w for w in manifest.contributions.writers if w.display_name == "NIfTI labels"]
    for name in ("brain_labels.nii.gz", "brain_labels.nii"):
        assert Path(name).suffix in writer.filename_extensions


def test_sample_data_is_reproducible_and_labelled():
    image, labels = cells_2d()
    again, _ = cells_2d()
    assert np.array_equal(image, again)
    assert image.dtype == np.uint16
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(len(CLASS_NAMES)))
    # nuclei are brighter than cytoplasm, which is brighter than background
    means = [image[labels == c].mean() for c in range(3)]
    assert means[0] < means[1] < means[2]
    stack, stack_labels = cells_3d(shape=(8, 64, 64), n_cells=3)
    assert stack.shape == stack_labels.shape == (8, 64, 64)
    assert (stack_labels == 2).any()
