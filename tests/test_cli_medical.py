"""The command line on NIfTI files and DICOM folders: outputs keep the source's affine."""

import importlib.util
import json
import pathlib

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_seg.cli import main
from napari_seg.inference import predict
from napari_seg.medical import read_nifti
from napari_seg.metrics import surface_scores
from napari_seg.models import ModelSpec, create_model, load_model, save_model
from napari_seg.sample_data import cells_3d

AFFINE = np.array([[-0.9, 0, 0, 40], [0, 0.8, 0, -30], [0, 0, 3.0, -12], [0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        encoder="classic",
        in_channels=1,
        num_classes=3,
        options={"depth": 2, "base_width": 4},
    )
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_model(create_model(spec), path)
    return path


@pytest.fixture(scope="module")
def stack():
    image, labels = cells_3d((5, 40, 48), seed=2)
    return image, labels


def predict_args(model_file, out, *inputs):
    return [
        "predict",
        "--model",
        str(model_file),
        "--output",
        str(out),
        "--tile",
        "32",
        "--precision",
        "fp32",
        "--quiet",
        *map(str, inputs),
    ]


def test_predict_nifti_writes_nifti_with_the_source_affine(model_file, stack, tmp_path):
    image, _ = stack
    stored = image.transpose(2, 1, 0)  # file order (x, y, z), an LAS affine
    nib.save(nib.Nifti1Image(stored, AFFINE), str(tmp_path / "brain.nii.gz"))
    assert (
        main(
            [
                *predict_args(model_file, tmp_path / "out", tmp_path / "brain.nii.gz"),
                "--probabilities",
            ]
        )
        == 0
    )
    labels = nib.load(tmp_path / "out" / "brain_labels.nii.gz")
    assert labels.shape == stored.shape
    np.testing.assert_allclose(labels.affine, AFFINE)
    array, _ = read_nifti(tmp_path / "brain.nii.gz")
    expected = predict(load_model(model_file), array, tile=32, precision="fp32", axis=0).labels
    np.testing.assert_array_equal(read_nifti(tmp_path / "out" / "brain_labels.nii.gz")[0], expected)
    probabilities = nib.load(tmp_path / "out" / "brain_probabilities.nii.gz")
    assert probabilities.shape == (*stored.shape, 3)
    np.testing.assert_allclose(probabilities.affine, AFFINE)


def test_predict_and_train_on_nrrd_files_from_slicer(model_file, stack, tmp_path):
    """3D Slicer's volume (case.nrrd) and segmentation (case.seg.nrrd): predict on their
    folder segments the volume only and writes NRRD on the volume's grid (as nnU-Net
    keeps a dataset's format; it wrote NIfTI), train reads the pair by name and names
    the classes by the segments (napari's reader did, train did not)."""
    import nrrd

    image, labels = stack
    file_order = (2, 1, 0)  # (z, y, x) arrays as (i, j, k) files: x fastest
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.7, 3.0]),
              "space origin": np.array([5.0, -6.0, 7.0])}  # fmt: skip
    nrrd.write(str(tmp_path / "case.nrrd"), image.transpose(file_order), header)
    nrrd.write(str(tmp_path / "case.seg.nrrd"), labels.transpose(file_order).astype(np.uint8),
               {**header, "Segment0_LabelValue": "1", "Segment0_Name": "cell",
                "Segment1_LabelValue": "2", "Segment1_Name": "nucleus"})  # fmt: skip
    args = predict_args(model_file, tmp_path / "out", tmp_path)  # the folder
    assert main([*args, "--probabilities"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["case_labels.nrrd", "case_probabilities.nrrd"]
    data, out = nrrd.read(str(tmp_path / "out" / "case_labels.nrrd"))  # pynrrd: the oracle
    assert data.shape == image.shape[::-1]
    assert data.dtype == np.uint8
    assert out["space"] == "left-posterior-superior"
    assert out["encoding"] == "gzip"
    # the model's classes as 3D Slicer's segments (the labels were unnamed numbers)
    assert [out[f"Segment{k}_Name"] for k in (0, 1)] == ["class 1", "class 2"]
    assert [out[f"Segment{k}_LabelValue"] for k in (0, 1)] == ["1", "2"]
    assert out["Segment0_Color"] == "0.12 0.47 0.71"
    np.testing.assert_allclose(out["space directions"], header["space directions"])
    np.testing.assert_allclose(out["space origin"], header["space origin"])
    probs, out = nrrd.read(str(tmp_path / "out" / "case_probabilities.nrrd"))
    assert probs.shape[1:] == image.shape[::-1]
    assert probs.dtype == np.float32
    assert out["kinds"] == ["list", "domain", "domain", "domain"]  # classes first, as Slicer
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-3)
    np.testing.assert_array_equal(probs.argmax(axis=0), data)
    model = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "case.nrrd"), "--labels",
            str(tmp_path / "case.seg.nrrd"), "--label0", "background", "--epochs", "1",
            "--steps-per-epoch", "1", "--patch", "32", "--option", "depth=2", "--option",
            "base_width=4", "--out", str(model), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    spec = load_model(model).spec
    assert spec.spacing == pytest.approx((0.7, 0.8))  # (y, x) of a 2D model
    assert spec.class_names == ("background", "cell", "nucleus")  # as napari names them


def test_predict_a_metaimage_gives_metaimage_with_its_placement(model_file, stack, tmp_path):
    """A grand-challenge.org case (case.mha, ITK's LPS origin, spacing and direction):
    predict writes one case_labels.mha on the same grid (it wrote NIfTI; a
    grand-challenge algorithm returns .mha), as ITK reads it back."""
    import SimpleITK as sitk

    image, _ = stack
    itk = sitk.GetImageFromArray(image)  # ITK's index (x, y, z) is the array's reversed
    itk.SetSpacing((0.8, 0.7, 3.0))
    itk.SetOrigin((5.0, -6.0, 7.0))
    itk.SetDirection((-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))  # x runs right to left
    sitk.WriteImage(itk, str(tmp_path / "case.mha"))
    assert main(predict_args(model_file, tmp_path / "out", tmp_path / "case.mha")) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["case_labels.mha"]
    out = sitk.ReadImage(str(tmp_path / "out" / "case_labels.mha"))
    np.testing.assert_allclose(out.GetSpacing(), (0.8, 0.7, 3.0))
    np.testing.assert_allclose(out.GetOrigin(), (5.0, -6.0, 7.0))
    np.testing.assert_allclose(out.GetDirection(), itk.GetDirection())
    labels = sitk.GetArrayFromImage(out)
    assert labels.shape == image.shape
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1}


def test_predict_dicom_folder_gives_nifti(model_file, stack, tmp_path, dicom_series):
    image, _ = stack
    dicom_series(tmp_path / "ct", (image // 64).astype(np.int16), spacing=(3.0, 0.8, 0.9))
    assert main(predict_args(model_file, tmp_path / "out", tmp_path / "ct")) == 0
    out = nib.load(tmp_path / "out" / "ct_labels.nii.gz")
    assert out.shape == image.shape[::-1]
    assert nib.aff2axcodes(out.affine) == ("L", "P", "S")
    np.testing.assert_allclose(np.sqrt((out.affine[:3, :3] ** 2).sum(0)), (0.9, 0.8, 3.0))


def test_predict_one_series_of_a_folder_by_one_of_its_files(
    model_file, stack, tmp_path, dicom_series, capsys
):
    """A folder holding two series is refused, naming each with one of its files; a
    file of one series predicts that series, its labels on that series' grid."""
    image, _ = stack
    ct = (image // 64).astype(np.int16)
    dicom_series(tmp_path / "study", ct, description="CT", spacing=(3.0, 0.8, 0.9))
    dicom_series(tmp_path / "study", ct[:5, :40, :48], description="T2", spacing=(
        5.0, 1.6, 1.8), names=[f"B{k}.dcm" for k in range(5)])  # fmt: skip
    assert main(predict_args(model_file, tmp_path / "out", tmp_path / "study")) == 1
    err = capsys.readouterr().err
    assert f"error: {tmp_path / 'study'} holds 2 DICOM series" in err  # named once
    assert "give one file of the series" in err
    assert main(predict_args(model_file, tmp_path / "out", tmp_path / "study" / "B2.dcm")) == 0
    out = nib.load(tmp_path / "out" / "B2_labels.nii.gz")
    assert out.shape == (48, 40, 5)
    np.testing.assert_allclose(np.sqrt((out.affine[:3, :3] ** 2).sum(0)), (1.8, 1.6, 5.0))
    # Every file given (a shell's study/*.dcm): each series once, by its first file.
    files = sorted((tmp_path / "study").iterdir())
    assert main(predict_args(model_file, tmp_path / "all", *files)) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "B0_labels.nii.gz", f"{files[5].name[:-4]}_labels.nii.gz",
    ]  # fmt: skip


def test_a_folder_of_dicom_series_folders_is_an_input_per_series(
    model_file, stack, tmp_path, dicom_series
):
    """A dataset with a DICOM folder per case (or a study with a folder per series):
    predict takes each series folder inside, and train pairs each with the NIfTI
    labels of its name; both refused the folder ('give those as inputs')."""
    from napari_seg._datasets import pair_files

    image, _ = stack
    for k, case in enumerate(("case1", "case2")):
        dicom_series(tmp_path / "images" / case, (image[k:] // 64).astype(np.int16))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{case}.nii.gz").write_bytes(b"")  # paired by name only
    (tmp_path / "images" / "notes").mkdir()  # a folder of no images: passed over
    assert main(predict_args(model_file, tmp_path / "out", tmp_path / "images")) == 0
    for k, case in enumerate(("case1", "case2")):
        out = nib.load(tmp_path / "out" / f"{case}_labels.nii.gz")
        assert out.shape == image[k:].shape[::-1]
    pairs = pair_files(tmp_path / "images", tmp_path / "labels").pairs
    assert [(i.name, lab.name) for i, lab in pairs] == [
        ("case1", "case1.nii.gz"), ("case2", "case2.nii.gz"),
    ]  # fmt: skip


def test_evaluate_surface_uses_the_nifti_spacing(stack, tmp_path, capsys):
    _, labels = stack
    pred = np.roll(labels, 2, axis=2)
    for name, data in (("gt", labels), ("pred", pred)):
        nib.save(
            nib.Nifti1Image(data.transpose(2, 1, 0).astype(np.uint8), AFFINE),
            str(tmp_path / f"{name}.nii.gz"),
        )
    args = [
        "evaluate",
        "--pred",
        str(tmp_path / "pred.nii.gz"),
        "--gt",
        str(tmp_path / "gt.nii.gz"),
        "--surface",
        "--json",
    ]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["surface"]["spacing"] == pytest.approx([3.0, 0.8, 0.9])
    assert out["surface"]["volume_unit"] == "mL"
    expected = surface_scores(pred, labels, spacing=(3.0, 0.8, 0.9), labels=(1, 2))
    got = [c["hausdorff"] for c in out["surface"]["classes"]]
    np.testing.assert_allclose(got, expected.hausdorff)
    assert main(args[:-1]) == 0  # the table names the voxel size as written, not float32's
    assert "surfaces, spacing 3 x 0.8 x 0.9 mm:" in capsys.readouterr().out


@pytest.mark.parametrize("nifti", ["pred", "gt"])
def test_evaluate_a_nifti_against_a_tiff_uses_the_nifti_grid_and_says_so(
    stack, tmp_path, capsys, nifti
):
    """Only the ground truth's voxel grid gave surface distances their spacing: a NIfTI
    prediction scored against a TIFF was measured in voxels (spacing 1 x 1 x 1), and
    nothing said that the TIFF is compared in napari-seg's reading order."""
    import tifffile

    _, labels = stack
    labels = labels.astype(np.uint8)
    volume = nib.Nifti1Image(labels.transpose(2, 1, 0), AFFINE)
    files = {"pred": tmp_path / "pred.tif", "gt": tmp_path / "gt.tif"}
    files[nifti] = tmp_path / f"{nifti}.nii.gz"
    nib.save(volume, str(files[nifti]))
    other = "gt" if nifti == "pred" else "pred"
    tifffile.imwrite(files[other], np.asarray(read_nifti(files[nifti])[0]))  # as read
    argv = ["evaluate", "--pred", str(files["pred"]), "--gt", str(files["gt"]), "--surface",
            "--json"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["surface"]["spacing"] == pytest.approx([3.0, 0.8, 0.9])
    assert out["surface"]["volume_unit"] == "mL"
    assert all(c["hausdorff"] == 0.0 for c in out["surface"]["classes"])
    assert (
        f"{other}.tif has no voxel grid: it is compared with {nifti}.nii.gz voxel by voxel"
        in captured.err
    )


def test_a_micrometre_nifti_keeps_its_unit_through_predict_and_evaluate(
    model_file, stack, tmp_path, capsys
):
    """A light-sheet stack saved as NIfTI in micrometres: the labels say micrometres
    too (not mm, which puts the same numbers 1000x larger in the world), and
    surface volumes are in cubic micrometres, not mL."""
    image, labels = stack
    for name, data in (("stack", image), ("stack_gt", labels.astype(np.uint8))):
        nifti = nib.Nifti1Image(data.transpose(2, 1, 0), AFFINE)
        nifti.header.set_xyzt_units("micron")
        nib.save(nifti, str(tmp_path / f"{name}.nii.gz"))
    assert main(predict_args(model_file, tmp_path / "out", tmp_path / "stack.nii.gz")) == 0
    written = nib.load(tmp_path / "out" / "stack_labels.nii.gz")
    assert written.header.get_xyzt_units()[0] == "micron"
    np.testing.assert_allclose(written.affine, AFFINE)
    capsys.readouterr()
    args = ["evaluate", "--pred", str(tmp_path / "out" / "stack_labels.nii.gz"),
            "--gt", str(tmp_path / "stack_gt.nii.gz"), "--surface", "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["surface"]["unit"] == "µm"
    assert out["surface"]["volume_unit"] == "µm^3"


def test_refine_nifti_keeps_the_affine_and_refuses_tiff_geometry(stack, tmp_path):
    _, labels = stack
    nib.save(
        nib.Nifti1Image(labels.transpose(2, 1, 0).astype(np.uint8), AFFINE),
        str(tmp_path / "seg.nii.gz"),
    )
    target = tmp_path / "seg_clean.nii.gz"
    assert (
        main(
            [
                "refine",
                str(tmp_path / "seg.nii.gz"),
                str(target),
                "--op",
                "opening",
                "--radius",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(nib.load(target).affine, AFFINE)
    assert nib.load(target).shape == labels.shape[::-1]
    np.save(tmp_path / "plain.npy", labels)
    assert (
        main(
            [
                "refine",
                str(tmp_path / "plain.npy"),
                str(tmp_path / "x.nii.gz"),
                "--op",
                "opening",
                "--radius",
                "1",
                "--quiet",
            ]
        )
        == 1
    )
    assert not (tmp_path / "x.nii.gz").exists()


def test_a_nifti_refined_into_a_tiff_keeps_its_voxel_size(stack, tmp_path):
    """Refine writes a medical input into a TIFF when asked (``seg.nii.gz seg.tif``);
    the TIFF was uncalibrated, losing the voxel size that napari, Fiji and
    ``evaluate --surface`` read. It is now an ImageJ hyperstack of the volume's
    voxel size, in millimetres."""
    from napari_seg._headers import tiff_calibration

    _, labels = stack
    nib.save(
        nib.Nifti1Image(labels.transpose(2, 1, 0).astype(np.uint8), AFFINE),
        str(tmp_path / "seg.nii.gz"),
    )
    op = ["--op", "opening", "--radius", "1", "--quiet"]
    assert main(["refine", str(tmp_path / "seg.nii.gz"), str(tmp_path / "seg.tif"), *op]) == 0
    calibration = tiff_calibration(tmp_path / "seg.tif")
    assert calibration is not None
    assert (calibration.axes, calibration.unit) == ("ZYX", "millimeter")
    np.testing.assert_allclose(calibration.scale, (3.0, 0.8, 0.9), rtol=1e-6)


def test_evaluate_names_classes_after_a_slicer_segmentations_segments(stack, tmp_path, capsys):
    """A .seg.nrrd ground truth names the scored classes (they were numbers)."""
    import json

    import nrrd

    _, labels = stack
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.7, 3.0])}
    segments = {"Segment0_LabelValue": "1", "Segment0_Name": "cell",
                "Segment1_LabelValue": "2", "Segment1_Name": "nucleus"}  # fmt: skip
    nrrd.write(str(tmp_path / "case.seg.nrrd"), labels.T.astype(np.uint8), {**header, **segments})
    nrrd.write(str(tmp_path / "case_labels.nrrd"), labels.T.astype(np.uint8), header)
    args = ["evaluate", "--pred", str(tmp_path / "case_labels.nrrd"), "--gt",
            str(tmp_path / "case.seg.nrrd"), "--json"]  # fmt: skip
    assert main(args) == 0
    scored = json.loads(capsys.readouterr().out)
    assert [c["class"] for c in scored["classes"]] == ["background", "cell", "nucleus"]


def test_refine_a_slicer_label_map_into_nrrd_and_metaimage(stack, tmp_path):
    """A label map refined into a folder keeps its NRRD format (it became NIfTI), and
    an .nrrd or .mha OUTPUT is written on its grid (both were refused)."""
    import nrrd
    import SimpleITK as sitk

    _, labels = stack
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.7, 3.0]),
              "space origin": np.array([5.0, -6.0, 7.0])}  # fmt: skip
    (tmp_path / "in").mkdir()
    nrrd.write(str(tmp_path / "in" / "case-label.nrrd"), labels.T.astype(np.uint8), header)
    op = ["--op", "opening", "--radius", "1", "--quiet"]
    assert main(["refine", str(tmp_path / "in"), str(tmp_path / "out"), *op]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["case-label.nrrd"]
    for name in ("clean.nrrd", "clean.mha"):
        assert (
            main(["refine", str(tmp_path / "in" / "case-label.nrrd"), str(tmp_path / name), *op])
            == 0
        )
    refined, written = nrrd.read(str(tmp_path / "clean.nrrd"))
    assert "Segment0_Name" not in written  # the source names no segments
    np.testing.assert_allclose(written["space directions"], header["space directions"])
    np.testing.assert_allclose(written["space origin"], header["space origin"])
    assert refined.shape == labels.T.shape
    assert set(np.unique(refined)) <= set(np.unique(labels))
    image = sitk.ReadImage(str(tmp_path / "clean.mha"))
    np.testing.assert_allclose(image.GetSpacing(), (0.8, 0.7, 3.0))
    np.testing.assert_allclose(image.GetOrigin(), (5.0, -6.0, 7.0))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), refined.T)


def mni_file(kind):
    spec = importlib.util.find_spec("nilearn")
    if spec is None:
        return None
    folder = pathlib.Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    path = folder / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    return path if path.exists() else None


@pytest.mark.skipif(mni_file("t1") is None, reason="nilearn==0.14.1 (the MNI template) missing")
def test_mni_template_end_to_end(model_file, tmp_path):
    """The real MNI ICBM152 T1 (197x233x189): read -> predict -> NIfTI -> reload.
    One tile per axial slice (with the others' 32 it took a minute of CI)."""
    source = nib.load(mni_file("t1"))
    args = predict_args(model_file, tmp_path, mni_file("t1"))
    args[args.index("--tile") + 1] = "256"
    assert main(args) == 0
    out = nib.load(tmp_path / "mni_icbm152_t1_tal_nlin_sym_09a_converted_labels.nii.gz")
    assert out.shape == source.shape == (197, 233, 189)
    np.testing.assert_allclose(out.affine, source.affine)
    # the template's world is "aligned" (sform code 2, no qform): the labels' is too
    codes = ("qform_code", "sform_code")
    assert [int(out.header[c]) for c in codes] == [int(source.header[c]) for c in codes]
    values = np.unique(np.asarray(out.dataobj))
    assert set(values.tolist()) <= {0, 1, 2}


def test_a_3d_model_predicts_a_nifti_at_its_own_spacing(tmp_path):
    """The NIfTI's voxel size (3 x 0.8 x 0.9 mm) differs from the model's (1.5 x 1.6 x
    1.8): the volume is resampled for the model and the labels come back on its grid."""
    image, _ = cells_3d((12, 40, 48), seed=4)
    torch.manual_seed(0)
    spec = ModelSpec(
        "unet",
        1,
        3,
        spatial_dims=3,
        options={"depth": 2, "base_width": 4},
        spacing=(1.5, 1.6, 1.8),
    )
    save_model(create_model(spec), tmp_path / "m3d.safetensors")
    nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), AFFINE), str(tmp_path / "vol.nii.gz"))
    args = [
        "predict",
        "--model",
        str(tmp_path / "m3d.safetensors"),
        "--output",
        str(tmp_path / "out"),
        "--precision",
        "fp32",
        "--quiet",
        str(tmp_path / "vol.nii.gz"),
    ]
    assert main(args) == 0
    out = nib.load(tmp_path / "out" / "vol_labels.nii.gz")
    assert out.shape == image.shape[::-1]
    np.testing.assert_allclose(out.affine, AFFINE)
    array, geometry = read_nifti(tmp_path / "vol.nii.gz")
    model = load_model(tmp_path / "m3d.safetensors")
    expected = predict(model, array, spacing=geometry.spacing, precision="fp32").labels
    np.testing.assert_array_equal(read_nifti(tmp_path / "out" / "vol_labels.nii.gz")[0], expected)
    # --spacing overrides the header's (here: the model's own, so no resampling)
    again = [*args[:4], str(tmp_path / "again"), *args[5:], "--spacing", "1.5", "1.6", "1.8"]
    assert main(again) == 0
    plain = predict(model, array, precision="fp32").labels
    np.testing.assert_array_equal(read_nifti(tmp_path / "again" / "vol_labels.nii.gz")[0], plain)


def _turned(affine, angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]) @ affine


@pytest.mark.parametrize(
    ("affine", "differs"),
    [
        (np.diag([0.9, 0.8, 3.0, 1.0]), "origin"),  # the x axis flipped: read turned round
        (AFFINE @ np.diag([0.5, 0.5, 1.0, 1.0]), "voxel size"),  # resampled, same shape
        (_turned(AFFINE, 0.2), "directions of their axes"),
        (None, None),  # the same affine up to float32 rounding: scored
    ],
)
def test_files_on_different_voxel_grids_are_not_scored_or_trained(
    stack, tmp_path, capsys, affine, differs
):
    """A prediction or labels file whose header puts its voxels elsewhere than its
    ground truth's or image's: the pair is refused, naming how the grids differ.
    Each file is reoriented by its own header, so the flipped pair scored IoU 0.5,
    which held neither voxel by voxel nor in the world."""
    image, labels = stack
    data = labels.transpose(2, 1, 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(data, AFFINE), str(tmp_path / "gt.nii.gz"))
    if affine is None:
        affine = AFFINE + np.float32(1e-5)
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "pred.nii.gz"))
    args = [
        "evaluate",
        "--pred",
        str(tmp_path / "pred.nii.gz"),
        "--gt",
        str(tmp_path / "gt.nii.gz"),
    ]
    assert main(args) == (1 if differs else 0)
    err = capsys.readouterr().err
    if differs is None:
        return
    assert "pred.nii.gz and gt.nii.gz lie on different voxel grids" in err
    assert differs in err
    nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), AFFINE), str(tmp_path / "img.nii.gz"))
    train = ["train", "--image", str(tmp_path / "img.nii.gz"), "--labels",
             str(tmp_path / "pred.nii.gz"), "--arch", "unet", "--axis", "0", "--epochs", "1",
             "--out", str(tmp_path / "m.safetensors"), "--quiet"]  # fmt: skip
    assert main(train) == 1
    assert "pred.nii.gz and img.nii.gz lie on different voxel grids" in capsys.readouterr().err
    assert not (tmp_path / "m.safetensors").exists()
    # refine: an image for the CRF on the grid of the labels' file, or not
    probs = np.stack([labels == c for c in range(3)]).astype(np.float32) * 0.8 + 0.1
    np.save(tmp_path / "probs.npy", probs)
    crf = ["refine", "--op", "crf", "--iterations", "1", "--device", "cpu", "--quiet",
           "--probabilities", str(tmp_path / "probs.npy")]  # fmt: skip
    out = tmp_path / "crf.nii.gz"
    image_file = ["--image", str(tmp_path / "img.nii.gz")]
    assert main([*crf, *image_file, str(tmp_path / "gt.nii.gz"), str(out)]) == 0
    assert main([*crf, *image_file, str(tmp_path / "pred.nii.gz"), str(out), "--overwrite"]) == 1
    assert "img.nii.gz and pred.nii.gz lie on different voxel grids" in capsys.readouterr().err


def test_train_reads_nifti_volumes(stack, tmp_path, capsys):
    image, labels = stack
    for name, data in (("img", image), ("seg", labels.astype(np.uint8))):
        nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), AFFINE), str(tmp_path / f"{name}.nii.gz"))
    args = ["train", "--image", str(tmp_path / "img.nii.gz"), "--labels",
            str(tmp_path / "seg.nii.gz"), "--arch", "unet", "--option", "depth=2",
            "--option", "base_width=4", "--axis", "0", "--epochs", "1", "--steps-per-epoch", "2",
            "--patch", "32", "--out", str(tmp_path / "m.safetensors"), "--quiet"]  # fmt: skip
    assert main(args) == 0
    model = load_model(tmp_path / "m.safetensors")
    assert model.spec.num_classes == int(labels.max()) + 1
    assert model.spec.spacing == pytest.approx((0.8, 0.9))  # the axial planes' voxel size
    assert model.spec.spacing_unit == "millimeter"  # the header's unit
    again = [*args[:-3], "--spacing", "0.5", "0.5", "--out", str(tmp_path / "n.safetensors")]
    assert main(again) == 0
    assert load_model(tmp_path / "n.safetensors").spec.spacing == (0.5, 0.5)
    # without --axis: the axial slices, as predict segments them (it was refused)
    at = args.index("--axis")
    plain = [*args[:at], *args[at + 2 : -3], "--out", str(tmp_path / "p.safetensors")]
    assert main(plain) == 0
    summary = json.loads((tmp_path / "p.training.json").read_text())
    assert summary["config"]["axis"] == 0


def test_refine_fills_between_slices_of_a_nifti_file(tmp_path):
    """Outlines on every 4th axial slice of a NIfTI file: the slices between are filled,
    the drawn ones kept, and the output keeps the affine."""
    from napari_seg.refine import interpolate_slices

    z, y, x = np.indices((17, 24, 24))
    truth = ((z - 8) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 < 9.5**2).astype(np.uint8)
    sparse = np.zeros_like(truth)
    sparse[::4] = truth[::4]
    # napari-seg's (z, y, x) is NIfTI's (k, j, i): store the transpose.
    nib.save(nib.Nifti1Image(sparse.transpose(2, 1, 0), AFFINE), str(tmp_path / "seg.nii.gz"))
    argv = ["refine", "--op", "interpolate_slices", "--method", "nearest", "--quiet"]
    assert main([*argv, str(tmp_path / "seg.nii.gz"), str(tmp_path / "filled.nii.gz")]) == 0
    out = nib.load(tmp_path / "filled.nii.gz")
    np.testing.assert_allclose(out.affine, AFFINE)
    filled = np.asarray(out.dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(filled, interpolate_slices(sparse, axis=0, method="nearest"))
    np.testing.assert_array_equal(filled[::4], sparse[::4])
    assert filled[1:16].any(axis=(1, 2)).all()


def test_train_3d_on_nifti_volumes_from_a_few_slices(tmp_path):
    """``--dims 3`` on NIfTI files painted on every 3rd slice: a 3D model with the files'
    voxel size, the planned patch in its summary, and fine-tuning it stays 3D."""
    image, labels = cells_3d((12, 40, 48), seed=2)
    sparse = np.zeros(labels.shape, np.uint8)
    sparse[::3] = labels[::3] + 1
    for name, data in (("img", image), ("seg", sparse)):
        nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), AFFINE), str(tmp_path / f"{name}.nii.gz"))
    args = ["train", "--image", str(tmp_path / "img.nii.gz"), "--labels",
            str(tmp_path / "seg.nii.gz"), "--dims", "3", "--option", "depth=2",
            "--option", "base_width=4", "--label0", "unlabelled", "--epochs", "1",
            "--steps-per-epoch", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "m.safetensors")]) == 0
    model = load_model(tmp_path / "m.safetensors")
    assert model.spec.spatial_dims == 3
    assert model.spec.spacing == pytest.approx((3.0, 0.8, 0.9))  # (z, y, x) voxel size
    summary = json.loads((tmp_path / "m.training.json").read_text())
    assert len(summary["config"]["patch_3d"]) == 3
    tuned = [*args[:5], "--from-model", str(tmp_path / "m.safetensors"), *args[11:]]
    assert "--dims" not in tuned
    assert (
        main([*tuned, "--patch-3d", "8", "16", "16", "--out", str(tmp_path / "t.safetensors")]) == 0
    )
    assert load_model(tmp_path / "t.safetensors").spec.spatial_dims == 3
    summary = json.loads((tmp_path / "t.training.json").read_text())
    assert summary["config"]["patch_3d"] == [8, 16, 16]


def _nnunet_case(folder, case, image_channels, labels=None, affine=AFFINE):
    """nnU-Net's files of one case: imagesX/CASE_0000.nii.gz, CASE_0001.nii.gz... and
    labelsX/CASE.nii.gz, ``(z, y, x)`` arrays stored in the files' (x, y, z) order."""
    for k, channel in enumerate(image_channels):
        path = folder / "images" / f"{case}_{k:04d}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(channel.transpose(2, 1, 0).astype(np.float32), affine), path)
    if labels is not None:
        path = folder / "labels" / f"{case}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(labels.transpose(2, 1, 0).astype(np.uint8), affine), path)


def test_channel_files_are_channels_whatever_their_number(tmp_path):
    """A case of more channel files than a 4D volume of channels holds
    (``MAX_VOLUME_CHANNELS``) is still channels, as its ``dataset.json`` names them:
    a new model takes them all, and predicts with them; a one-channel model is
    refused them rather than going through them as time points."""
    from napari_seg.medical import MAX_VOLUME_CHANNELS

    count = MAX_VOLUME_CHANNELS + 1
    task = tmp_path / "Dataset002_Many"
    _, labels = cells_3d((6, 32, 32), seed=1)
    channels = [(labels == 1) + 0.1 * k for k in range(count)]
    _nnunet_case(task, "c_001", channels, labels)
    names = {str(k): f"c{k}" for k in range(count)}
    (task / "dataset.json").write_text(json.dumps({"channel_names": names,
                                                   "labels": {"background": 0, "a": 1, "b": 2},
                                                   "file_ending": ".nii.gz"}))  # fmt: skip
    model = tmp_path / "many.safetensors"
    argv = ["train", "--image", str(task / "images"), "--labels", str(task / "labels"),
            "--arch", "pixel-classifier", "--dims", "3", "--option", "max_sigma=2", "--option",
            "trees=2", "--label0", "background", "--out", str(model), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert load_model(model).spec.in_channels == count
    assert main(predict_args(model, tmp_path / "out", task / "images" / "c_001_0000.nii.gz")) == 0
    assert nib.load(tmp_path / "out" / "c_001_0000_labels.nii.gz").shape == (32, 32, 6)
    one = ModelSpec("unet", 1, 3, spatial_dims=3, options={"depth": 2, "base_width": 4})
    save_model(create_model(one), tmp_path / "one.safetensors")  # not time points to it
    case = task / "images" / "c_001_0000.nii.gz"
    assert main(predict_args(tmp_path / "one.safetensors", tmp_path / "x", case)) == 1
    assert not (tmp_path / "x" / "c_001_0000_labels.nii.gz").exists()


def test_an_nnunet_case_of_several_channel_files_trains_predicts_and_evaluates(tmp_path, capsys):
    """A two-modality dataset as nnU-Net v2 stores it: one file per channel and case,
    the channels named in dataset.json. Each class shows in one channel only, so only
    a model that reads both channels of a case finds both."""
    rng = np.random.default_rng(0)
    task = tmp_path / "Dataset001_Two"
    for split, cases in (("Tr", ("c_001", "c_002")), ("Ts", ("c_003",))):
        for case in cases:
            _, labels = cells_3d((12, 40, 40), seed=int(case[-1]))
            first = (labels == 1) + 0.2 * rng.standard_normal(labels.shape)
            second = (labels == 2) + 0.2 * rng.standard_normal(labels.shape)
            _nnunet_case(task / split, case, [first, second], labels)
    for split in ("Tr", "Ts"):
        for kind in ("images", "labels"):
            (task / split / kind).rename(task / f"{kind}{split}")
            (task / split).rmdir() if not any((task / split).iterdir()) else None
    description = {
        "channel_names": {"0": "first", "1": "second"},
        "labels": {"background": 0, "one": 1, "two": 2},
        "file_ending": ".nii.gz",
    }
    (task / "dataset.json").write_text(json.dumps(description))
    model = tmp_path / "two.safetensors"
    fit = ["--arch", "pixel-classifier", "--dims", "3", "--option", "max_sigma=2",
           "--option", "trees=4", "--label0", "background", "--out", str(model)]  # fmt: skip
    folders = ["--image", str(task / "imagesTr"), "--labels", str(task / "labelsTr")]
    assert main(["train", *folders, *fit]) == 0
    assert load_model(model).spec.in_channels == 2
    out = tmp_path / "out"
    assert main(predict_args(model, out, task / "imagesTs")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["c_003_0000_labels.nii.gz"]
    written, geometry = read_nifti(out / "c_003_0000_labels.nii.gz")
    assert written.shape == (12, 40, 40)  # one volume of labels for the two channels
    np.testing.assert_allclose(geometry.affine, AFFINE)
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(out), "--gt", str(task / "labelsTs"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["pooled"]["mean_iou"] > 0.7, scores["pooled"]["mean_iou"]


def test_channel_files_of_a_case_are_read_as_one_multichannel_volume(tmp_path):
    from napari_seg._dataset_json import dataset_channels
    from napari_seg._io import read_with_geometry

    rng = np.random.default_rng(1)
    channels = [rng.random((4, 6, 8)).astype(np.float32) for _ in range(3)]
    _nnunet_case(tmp_path, "k_01", channels)
    first = tmp_path / "images" / "k_01_0000.nii.gz"
    alone, _ = read_with_geometry(first)  # no dataset.json: one file, one channel
    assert alone.shape == (4, 6, 8)
    description = tmp_path / "dataset.json"
    description.write_text(json.dumps({"modality": {"0": "FLAIR", "1": "T1w", "2": "T2w"}}))
    assert dataset_channels(tmp_path / "images") == ("FLAIR", "T1w", "T2w")
    array, geometry = read_with_geometry(first)
    assert array.shape == (3, 4, 6, 8)
    for k in range(3):
        alone = read_nifti(first.with_name(f"k_01_{k:04d}.nii.gz"))[0]
        np.testing.assert_array_equal(array[k], alone)
    np.testing.assert_allclose(geometry.affine, AFFINE)
    # a later channel file read alone is that channel only
    assert read_with_geometry(tmp_path / "images" / "k_01_0001.nii.gz")[0].shape == (4, 6, 8)
    # keys that are not 0, 1, 2...: no channels named
    description.write_text(json.dumps({"channel_names": {"0": "a", "2": "b"}}))
    assert dataset_channels(tmp_path / "images") is None
    description.write_text(json.dumps({"channel_names": {"0": "a", "1": "b", "2": "c", "3": "d"}}))
    with pytest.raises(ValueError, match=r"k_01_0003\.nii\.gz is missing"):
        read_with_geometry(first)
    description.write_text(json.dumps({"channel_names": {"0": "a", "1": "b", "2": "c"}}))
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    _nnunet_case(tmp_path, "k_01", channels[:2], affine=shifted)  # channels 0 and 1 moved
    with pytest.raises(ValueError, match="lie on different grids"):
        read_with_geometry(first)


def test_axis_0_takes_a_4d_nifti_s_volumes_as_time_points(tmp_path, capsys):
    """A cine or dynamic series stored as 4D NIfTI: its volumes are channels by the
    stated rule, and ``--axis 0`` now says they are time points, each segmented by a
    3D model (it was refused: 'the model expects 1 channel(s) ... has 3')."""
    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, spatial_dims=3, options={"depth": 2, "base_width": 4})
    model = create_model(spec)
    save_model(model, tmp_path / "m3d.safetensors")
    frames = np.stack([cells_3d((6, 32, 36), seed=s)[0] for s in range(3)])
    nib.save(nib.Nifti1Image(frames.transpose(3, 2, 1, 0), AFFINE), tmp_path / "cine.nii.gz")
    args = predict_args(tmp_path / "m3d.safetensors", tmp_path / "out", tmp_path / "cine.nii.gz")
    assert main(args) == 1
    assert "if they are time points, go through them (--axis 0" in capsys.readouterr().err
    assert main([*args, "--axis", "0"]) == 0
    out = nib.load(tmp_path / "out" / "cine_labels.nii.gz")
    assert out.shape == (36, 32, 6, 3)
    np.testing.assert_allclose(out.affine, AFFINE)
    volumes, _ = read_nifti(tmp_path / "cine.nii.gz")  # (t, z, y, x) in LPS
    expected = predict(model, volumes, tile=32, precision="fp32", axis=0).labels
    np.testing.assert_array_equal(read_nifti(tmp_path / "out" / "cine_labels.nii.gz")[0],
                                  expected)  # fmt: skip


def test_a_4d_nifti_of_many_volumes_holds_time_points(tmp_path, capsys):
    """A 4D NIfTI of more volumes than a volume has channels (a cardiac cine MRI's
    frames): its volumes are time points without ``--axis 0`` (it was refused as a
    one-channel model on that many channels); a model taking that many channels
    still reads them as channels, in predict and when it is fine-tuned."""
    from napari_seg.medical import MAX_VOLUME_CHANNELS

    count = MAX_VOLUME_CHANNELS + 1
    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, spatial_dims=3, options={"depth": 2, "base_width": 4})
    save_model(create_model(spec), tmp_path / "m3d.safetensors")
    frames = np.stack([cells_3d((4, 32, 36), seed=s)[0] for s in range(count)])
    nib.save(nib.Nifti1Image(frames.transpose(3, 2, 1, 0), AFFINE), tmp_path / "cine.nii.gz")
    args = predict_args(tmp_path / "m3d.safetensors", tmp_path / "out", tmp_path / "cine.nii.gz")
    assert main(args) == 0
    given = predict_args(tmp_path / "m3d.safetensors", tmp_path / "given", tmp_path / "cine.nii.gz")
    assert main([*given, "--axis", "0"]) == 0
    out = nib.load(tmp_path / "out" / "cine_labels.nii.gz")
    assert out.shape == (36, 32, 4, count)
    np.testing.assert_array_equal(
        np.asarray(out.dataobj),
        np.asarray(nib.load(tmp_path / "given" / "cine_labels.nii.gz").dataobj),
    )
    wide = ModelSpec("unet", count, 3, spatial_dims=3, options={"depth": 2, "base_width": 4})
    save_model(create_model(wide), tmp_path / "wide.safetensors")
    args = predict_args(tmp_path / "wide.safetensors", tmp_path / "w", tmp_path / "cine.nii.gz")
    assert main(args) == 0
    assert nib.load(tmp_path / "w" / "cine_labels.nii.gz").shape == (36, 32, 4)
    labels = cells_3d((4, 32, 36), seed=0)[1].astype(np.uint8)
    nib.save(nib.Nifti1Image(labels.transpose(2, 1, 0), AFFINE), tmp_path / "one_labels.nii.gz")
    tune = ["train", "--image", str(tmp_path / "cine.nii.gz"), "--labels",
            str(tmp_path / "one_labels.nii.gz"), "--from-model", str(tmp_path / "wide.safetensors"),
            "--epochs", "1", "--steps-per-epoch", "1", "--patch", "32", "--quiet",
            "--out", str(tmp_path / "tuned.safetensors")]  # fmt: skip
    assert main(tune) == 0  # as channels to fine-tuning too ("axis 0 is the channel axis")


def test_4d_label_maps_are_scored_frame_by_frame(tmp_path, capsys):
    """A cine MRI's prediction and truth (4D label maps: time points, as labels have
    no channels) are scored frame by frame, surfaces too, without ``--per-slice 0``
    (surfaces were refused: 'these labels have 4 axes'), as a TIFF time-lapse is."""
    truth = np.zeros((5, 6, 20, 24), np.uint8)  # (t, z, y, x)
    truth[:, 1:4, 5:15, 4:12] = 1
    truth[:, 2:5, 8:12, 14:20] = 2
    pred = truth.copy()
    pred[::2, 1:4, 5:7, 4:12] = 0  # even frames lose two rows of class 1
    for name, labels in (("gt", truth), ("pred", pred)):
        nib.save(nib.Nifti1Image(labels.transpose(3, 2, 1, 0), AFFINE), tmp_path / f"{name}.nii.gz")
    argv = ["evaluate", "--pred", str(tmp_path / "pred.nii.gz"), "--gt",
            str(tmp_path / "gt.nii.gz"), "--surface"]  # fmt: skip
    assert main(argv) == 0
    assert "per frame along axis 0, mean IoU (no background): 0." in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["config"]["slice_axis"] == 0
    assert scored["surface"]["series"] == 5
    spacing = (3.0, 0.8, 0.9)  # (z, y, x), the header's
    np.testing.assert_allclose(scored["surface"]["spacing"], spacing)
    frames = [surface_scores(pred[t], truth[t], spacing=spacing) for t in range(5)]
    for k, row in enumerate(scored["surface"]["classes"]):  # the mean of the frames'
        assert row["id"] == frames[0].labels[k]
        np.testing.assert_allclose(row["hausdorff"], np.mean([f.hausdorff[k] for f in frames]))
        np.testing.assert_allclose(row["assd"], np.mean([f.assd[k] for f in frames]))
    values = scored["per_slice"]["values"]
    assert values[1] == values[3] == 1.0 > values[0] == values[2] == values[4]


@pytest.mark.parametrize(("dims", "axis"), [("3", 0), ("2", [0, 1])])
def test_a_4d_nifti_with_4d_labels_trains_on_its_time_points(tmp_path, dims, axis):
    """A cine MRI segmented frame by frame: image and labels both 4D. Labels have no
    channels, so the 4th axis holds time points: a 3D model trains volume by volume, a
    2D one on every slice of every frame (it was read as channels and refused, 'labels
    shape (3, 6, 32, 36) does not match the image shape (3, 6, 32, 36)'; with --axis 0
    as 'axis 0 is the channel axis')."""
    frames = [cells_3d((6, 32, 36), seed=s) for s in range(3)]
    for name, k, dtype in (("cine", 0, np.float32), ("cine_labels", 1, np.uint8)):
        array = np.stack([f[k] for f in frames], axis=-1).transpose(2, 1, 0, 3)
        nib.save(nib.Nifti1Image(array.astype(dtype), AFFINE), tmp_path / f"{name}.nii.gz")
    argv = ["train", "--image", str(tmp_path / "cine.nii.gz"), "--labels",
            str(tmp_path / "cine_labels.nii.gz"), "--dims", dims, "--epochs", "1",
            "--steps-per-epoch", "1", "--patch", "32", "--option", "depth=2", "--option",
            "base_width=4", "--label0", "background", "--quiet"]  # fmt: skip
    for extra in ([], ["--axis", "0"]) if dims == "3" else ([],):  # as given, for 3D
        out = tmp_path / f"m{len(extra)}.safetensors"
        assert main([*argv, *extra, "--out", str(out)]) == 0
        model = load_model(out)
        assert (model.spec.in_channels, model.spec.spatial_dims) == (1, int(dims))
        summary = json.loads(out.with_suffix("").with_suffix(".training.json").read_text())
        assert summary["config"]["axis"] == (axis if not extra else 0)
        assert summary["config"].get("channel_axis") is None
        classes = np.unique(np.stack([f[1] for f in frames]))
        assert summary["data"]["class_pixels"][: classes.size] != [0] * classes.size


def test_a_3d_model_trains_on_a_4d_nifti_s_channels(tmp_path):
    """The Decathlon's multi-modal format, channels along a 4D NIfTI's 4th axis: a
    new 3D model reads them as channels, as predict does (the train command took
    the channel axis for a spatial one and refused the volume)."""
    rng = np.random.default_rng(3)
    _, labels = cells_3d((10, 32, 32), seed=4)
    channels = np.stack([(labels == 1) + 0.1 * rng.random(labels.shape),
                         (labels == 2) + 0.1 * rng.random(labels.shape)], axis=-1)  # fmt: skip
    stored = channels.transpose(2, 1, 0, 3).astype(np.float32)
    nib.save(nib.Nifti1Image(stored, AFFINE), tmp_path / "case.nii.gz")
    lab = labels.transpose(2, 1, 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(lab, AFFINE), tmp_path / "case_labels.nii.gz")
    model = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "case.nii.gz"), "--labels",
            str(tmp_path / "case_labels.nii.gz"), "--dims", "3", "--arch", "pixel-classifier",
            "--option", "max_sigma=2", "--label0", "background", "--out", str(model)]  # fmt: skip
    assert main(argv) == 0
    assert load_model(model).spec.in_channels == 2


def test_a_refined_slicer_segmentation_keeps_its_segments(stack, tmp_path):
    """A .seg.nrrd refined into .nrrd keeps its segments' names, values and colours
    (3D Slicer opened the result as unnamed numbers); objects numbered from it are no
    longer its classes and are written without them."""
    import nrrd

    _, labels = stack
    header = {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.7, 3.0])}
    segments = {"Segment0_LabelValue": "1", "Segment0_Name": "cell",
                "Segment0_Color": "0.5 0.25 1", "Segment1_LabelValue": "2",
                "Segment1_Name": "nucleus"}  # fmt: skip
    source = tmp_path / "case.seg.nrrd"
    nrrd.write(str(source), labels.T.astype(np.uint8), {**header, **segments})
    op = ["--op", "opening", "--radius", "1", "--quiet"]
    assert main(["refine", str(source), str(tmp_path / "clean.seg.nrrd"), *op]) == 0
    _, written = nrrd.read(str(tmp_path / "clean.seg.nrrd"))
    assert [written[f"Segment{k}_Name"] for k in (0, 1)] == ["cell", "nucleus"]
    assert [written[f"Segment{k}_LabelValue"] for k in (0, 1)] == ["1", "2"]
    assert written["Segment0_Color"] == "0.5 0.25 1"
    assert "Segment1_Color" not in written  # none stated: Slicer picks one
    objects = ["--op", "connected_components", "--quiet"]
    assert main(["refine", str(source), str(tmp_path / "objects.nrrd"), *objects]) == 0
    assert "Segment0_Name" not in nrrd.read_header(str(tmp_path / "objects.nrrd"))


def test_a_cropped_slicer_segmentation_is_scored_and_trained_on_its_images_grid(
    stack, tmp_path, capsys
):
    """3D Slicer saves a segmentation cropped to its segments (fewer voxels, the origin
    moved to the first one): evaluate scores it on the prediction's grid as the uncropped
    labels score, and train pairs it with its image, each with a note (both refused
    the pair as files on different grids); refine takes the image's voxels under it
    (refused the image as a file on another grid)."""
    import json

    import nrrd

    image, labels = stack
    labels = labels.astype(np.uint8)
    labels[:, :2] = labels[:, -2:] = labels[:, :, :3] = 0  # a margin without labels
    directions = np.diag([0.8, 0.7, 3.0])
    origin = np.array([5.0, -6.0, 7.0])
    header = {"space": "left-posterior-superior", "space directions": directions}
    files = {"space origin": origin}
    nrrd.write(str(tmp_path / "case.nrrd"), image.T, {**header, **files})
    nrrd.write(str(tmp_path / "full.nrrd"), labels.T, {**header, **files})
    crop = labels[:, 2:-2, 3:].T  # (i, j, k): x from 3, y from 2
    moved = origin + directions.T @ [3, 2, 0]
    nrrd.write(str(tmp_path / "case.seg.nrrd"), np.ascontiguousarray(crop),
               {**header, "space origin": moved, "Segmentation_ReferenceImageExtentOffset":
                "3 2 0", "Segment0_LabelValue": "1", "Segment0_Name": "cell",
                "Segment1_LabelValue": "2", "Segment1_Name": "nucleus"})  # fmt: skip
    scores = []
    for gt in ("full.nrrd", "case.seg.nrrd"):
        argv = ["evaluate", "--pred", str(tmp_path / "full.nrrd"), "--gt", str(tmp_path / gt),
                "--json"]  # fmt: skip
        assert main(argv) == 0
        captured = capsys.readouterr()
        scores.append([(c["IoU"], c["gt pixels"]) for c in json.loads(captured.out)["classes"]])
    assert scores[0] == scores[1]
    assert [iou for iou, _ in scores[1]] == [1.0, 1.0, 1.0]
    assert "case.seg.nrrd covers part of the grid of full.nrrd" in captured.err
    shifted = labels.copy()
    shifted[:, :, 1:] = labels[:, :, :-1]  # one voxel off: scored lower, not the same
    nrrd.write(str(tmp_path / "off.nrrd"), shifted.T, {**header, **files})
    argv = ["evaluate", "--pred", str(tmp_path / "off.nrrd"), "--gt",
            str(tmp_path / "case.seg.nrrd"), "--json"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["classes"][1]["IoU"] < 0.9
    model = tmp_path / "m.safetensors"
    argv = ["train", "--image", str(tmp_path / "case.nrrd"), "--labels",
            str(tmp_path / "case.seg.nrrd"), "--label0", "background", "--epochs", "1",
            "--steps-per-epoch", "1", "--patch", "32", "--option", "depth=2", "--option",
            "base_width=4", "--out", str(model), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert "case.seg.nrrd covers part of the grid of case.nrrd" in capsys.readouterr().err
    assert load_model(model).spec.class_names == ("background", "cell", "nucleus")
    # an image cropped to a region of interest, trained with the labels of the volume
    roi = np.ascontiguousarray(image[:, 5:, 4:].T)
    nrrd.write(
        str(tmp_path / "roi.nrrd"),
        roi,
        {**header, "space origin": origin + directions.T @ [4, 5, 0]},
    )
    argv[argv.index(str(tmp_path / "case.nrrd"))] = str(tmp_path / "roi.nrrd")
    argv[argv.index(str(tmp_path / "case.seg.nrrd"))] = str(tmp_path / "full.nrrd")
    assert main([*argv, "--overwrite"]) == 0
    outside = np.count_nonzero(labels[:, :5]) + np.count_nonzero(labels[:, 5:, :4])
    assert outside > 0
    note = (f"roi.nrrd covers part of the grid of full.nrrd: trained on the labels under it "
            f"({outside} labelled voxels outside it left out)")  # fmt: skip
    assert note in capsys.readouterr().err
    # refine: the image's voxels under the cropped labels (a file on the image's grid)
    under = crop.T  # (z, y, x)
    probs = np.stack([under == c for c in range(3)]).astype(np.float32) * 0.1 + 0.3
    np.save(tmp_path / "probs.npy", probs)  # (c, z, y, x) of the cropped labels
    np.save(tmp_path / "under.npy", image[:, 2:-2, 3:])  # the image cropped by hand
    np.save(tmp_path / "wrong.npy", image[:, 2:-2, :-3])  # another window
    crf = ["refine", "--op", "crf", "--iterations", "2", "--device", "cpu", "--quiet",
           "--probabilities", str(tmp_path / "probs.npy"),
           str(tmp_path / "case.seg.nrrd")]  # fmt: skip
    for image_file, out in (
        ("case.nrrd", "a.seg.nrrd"),
        ("under.npy", "b.seg.nrrd"),
        ("wrong.npy", "w.seg.nrrd"),
    ):
        assert main([*crf, str(tmp_path / out), "--image", str(tmp_path / image_file)]) == 0
    refined, written = nrrd.read(str(tmp_path / "a.seg.nrrd"))
    np.testing.assert_array_equal(refined, nrrd.read(str(tmp_path / "b.seg.nrrd"))[0])
    assert np.any(refined != nrrd.read(str(tmp_path / "w.seg.nrrd"))[0])  # the image counts
    assert refined.shape == crop.shape
    np.testing.assert_allclose(written["space origin"], moved)
    far = origin + directions.T @ [-1, 0, 0]  # a labels grid reaching outside the image's
    nrrd.write(
        str(tmp_path / "far.seg.nrrd"), np.ascontiguousarray(crop), {**header, "space origin": far}
    )
    assert main([*crf[:-1], str(tmp_path / "far.seg.nrrd"), str(tmp_path / "c.seg.nrrd"),
                 "--image", str(tmp_path / "case.nrrd")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "far.seg.nrrd reaches outside the grid of case.nrrd" in err
    assert not (tmp_path / "c.seg.nrrd").exists()


def _slicer_reference(directions, origin, shape_ijk):
    """3D Slicer's "Reference image geometry" conversion parameter for an LPS image of
    ``directions`` (rows: the i, j, k steps), ``origin`` and file-order shape: the
    image-to-RAS matrix row by row, then the extent ``0;n-1`` per axis."""
    to_ras = np.diag([-1.0, -1.0, 1.0])
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = to_ras @ np.asarray(directions).T, to_ras @ origin
    values = [*(f"{v:.17g}" for v in matrix.ravel()), *(f"0;{n - 1}" for n in shape_ijk)]
    return f"Reference image geometry|{';'.join(values)};|Image geometry description.&"


def test_a_slicer_segmentation_cropped_to_its_segments_lies_on_its_image(tmp_path, capsys):
    """3D Slicer 4.11 saved a .seg.nrrd cropped to its segments, recording the grid of
    the image it was drawn on ("Reference image geometry"). It was read on its crop, so
    napari showed a layer that could not be painted beyond it and refine's dilation
    stopped at the crop's edge. It is now read on the image's grid (here rotated in
    plane), padded with 0; a reference it does not lie on, or one not understood, leaves
    it on its own grid."""
    import nrrd

    from napari_seg import refine
    from napari_seg.medical import read_volume

    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), np.sin(angle), 0], [-np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])  # fmt: skip
    directions = np.diag([0.8, 0.7, 3.0]) @ rotation  # rows: the i, j, k steps (LPS mm)
    origin = np.array([5.0, -6.0, 7.0])
    shape = (6, 20, 24)  # (z, y, x)
    labels = np.zeros(shape, np.uint8)
    labels[1:5, 4:12, 6:15] = 1
    labels[2:4, 6:9, 8:12] = 2
    header = {"space": "left-posterior-superior", "space directions": directions}
    nrrd.write(str(tmp_path / "case.nrrd"), np.zeros(shape, np.int16).T,
               {**header, "space origin": origin})  # fmt: skip
    crop = np.ascontiguousarray(labels[1:5, 4:12, 6:15].T)  # the segments' box, (i, j, k)
    segments = {"Segment0_LabelValue": "1", "Segment0_Name": "organ",
                "Segment1_LabelValue": "2", "Segment1_Name": "lesion"}  # fmt: skip

    def write(name, reference):
        fields = {"space origin": origin + directions.T @ [6, 4, 1], **segments,
                  "Segmentation_ConversionParameters": reference}  # fmt: skip
        nrrd.write(str(tmp_path / name), crop, {**header, **fields})

    write("case.seg.nrrd", _slicer_reference(directions, origin, shape[::-1]))
    image_grid = read_volume(tmp_path / "case.nrrd")[1]
    read, grid = read_volume(tmp_path / "case.seg.nrrd")
    np.testing.assert_array_equal(read, labels)
    np.testing.assert_allclose(grid.affine, image_grid.affine, atol=1e-9)
    argv = ["refine", "--op", "dilation", "--radius", "1", "--quiet"]
    out = tmp_path / "grown.seg.nrrd"
    assert main([*argv, str(tmp_path / "case.seg.nrrd"), str(out)]) == 0, capsys.readouterr().err
    grown = read_volume(out)[0]
    np.testing.assert_array_equal(grown, refine.dilation(labels, 1))
    assert np.count_nonzero(grown) > np.count_nonzero(grown[1:5, 4:12, 6:15])  # past the crop
    write("fine.seg.nrrd", _slicer_reference(directions / 2, origin, (48, 40, 12)))
    write("odd.seg.nrrd", "Reference image geometry|1;2;3;|x&")
    for name in ("fine.seg.nrrd", "odd.seg.nrrd"):  # oversampled; not understood
        np.testing.assert_array_equal(read_volume(tmp_path / name)[0], crop.T)
