"""A leading ``~`` in a path is the user's home folder, wherever napari-seg takes a
path: from Python, from a config file, from the command line (``--out=~/m``, which
the shell leaves as written) and from the docks' file fields."""

import numpy as np
import pytest

from napari_seg._paths import user_path


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # where Windows looks first
    return tmp_path


def test_user_path_expands_only_a_leading_tilde(home):
    assert user_path("~/a.tif") == home / "a.tif"
    assert str(user_path("data/~a.tif")) == "data/~a.tif"


def test_models_are_written_and_read_under_home(home):
    from napari_seg.models import create_model, load_model, read_model_spec, save_model

    model = create_model("unet", in_channels=1, num_classes=2, depth=2, base_width=4)
    assert save_model(model, "~/m.safetensors") == home / "m.safetensors"
    assert (home / "m.safetensors").is_file()
    assert load_model("~/m.safetensors").spec == model.spec
    assert read_model_spec("~/m.safetensors") == model.spec


def test_volumes_configs_and_images_under_home(home):
    from napari_seg._io import expand_inputs, read_image, read_labels
    from napari_seg.medical import VolumeGeometry, read_volume, write_volume
    from napari_seg.refine import RefineConfig

    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1:3, 2:4, 1:5] = 2
    geometry = VolumeGeometry.from_affine(np.diag([2.0, 1.0, 1.0, 1.0]), labels.shape[::-1])
    write_volume("~/v_labels.nii.gz", labels, geometry)
    read, back = read_volume("~/v_labels.nii.gz")
    np.testing.assert_array_equal(read, labels)
    assert back.spacing == geometry.spacing

    job = RefineConfig.given([{"op": "opening", "params": {"radius": 1}}])
    job.save("~/clean.yaml")
    assert RefineConfig.load("~/clean.yaml") == job

    np.save(home / "a.npy", labels[0].astype(bool))
    np.testing.assert_array_equal(read_image("~/a.npy"), labels[0] > 0)
    assert read_labels("~/a.npy")[0].dtype == np.uint8
    assert expand_inputs([user_path("~/*.npy")]) == [home / "a.npy"]


def test_training_writes_its_model_under_home(home):
    from napari_seg.training import train

    rng = np.random.default_rng(0)
    image = rng.random((32, 32)).astype(np.float32)
    labels = (image > 0.5).astype(np.uint8)
    result = train(
        (image, labels), architecture="unet", options={"depth": 2, "base_width": 4},
        epochs=1, steps_per_epoch=1, minutes=None, patch_size=32, batch_size=1,
        validation_fraction=0.0, device="cpu", out="~/t.safetensors",
    )  # fmt: skip
    assert (home / "t.safetensors").is_file()
    assert result.best_path == home / "t.safetensors"


def test_the_command_line_expands_what_the_shell_left(home, capsys):
    from napari_seg.cli import main

    # bash leaves "--out=~/c.safetensors" as written: only "a=~/x" words are expanded
    assert (
        main(
            [
                "create",
                "--arch",
                "unet",
                "--in-channels",
                "1",
                "--classes",
                "2",
                "--out=~/c.safetensors",
            ]
        )
        == 0
    )
    assert (home / "c.safetensors").is_file()
    assert main(["info", "~/c.safetensors", "--json"]) == 0
    assert '"num_classes": 2' in capsys.readouterr().out


def test_a_bare_model_name_gets_the_suffix_napari_reads(tmp_path, capsys):
    """``save_model(model, "nuclei")`` wrote a file napari's reader did not take by
    name, and ``train(out="nuclei")`` wrote ``nuclei`` beside ``nuclei-last.safetensors``."""
    from napari_seg.cli import main
    from napari_seg.models import create_model, load_model, save_model
    from napari_seg.training import train

    model = create_model("unet", in_channels=1, num_classes=2, depth=2, base_width=4)
    assert save_model(model, tmp_path / "nuclei") == tmp_path / "nuclei.safetensors"
    assert load_model(tmp_path / "nuclei.safetensors").spec == model.spec
    assert save_model(model, tmp_path / "nuclei.v2") == tmp_path / "nuclei.v2"  # as given
    assert not (tmp_path / "nuclei").exists()

    rng = np.random.default_rng(0)
    image = rng.random((32, 32)).astype(np.float32)
    result = train(
        (image, (image > 0.5).astype(np.uint8)), architecture="unet",
        options={"depth": 2, "base_width": 4}, epochs=1, steps_per_epoch=1, minutes=None,
        patch_size=32, batch_size=1, validation_fraction=0.0, device="cpu",
        out=tmp_path / "run",
    )  # fmt: skip
    assert result.best_path == tmp_path / "run.safetensors"
    assert (tmp_path / "run.training.json").is_file()

    out = tmp_path / "made"
    args = ["create", "--arch", "unet", "--in-channels", "1", "--classes", "2"]
    assert main([*args, "--out", str(out)]) == 0
    assert f"wrote {out}.safetensors:" in capsys.readouterr().out


def test_a_block_run_takes_its_files_under_home(home):
    """``iter_predict_blocks`` made its paths absolute for the workers with
    ``Path.resolve``, which reads ``~`` as a folder of the working directory."""
    pytest.importorskip("ome_zarr_models", reason="block runs need the cluster extra")
    import tifffile

    from napari_seg._generators import drain
    from napari_seg.inference import PredictConfig
    from napari_seg.models import create_model, save_model
    from napari_seg.scaleout.run import iter_predict_blocks

    model = create_model("unet", in_channels=1, num_classes=2, depth=2, base_width=4)
    save_model(model, home / "m.safetensors")
    tifffile.imwrite(home / "img.tif", np.random.default_rng(0).random((64, 80), np.float32))
    config = PredictConfig(device="cpu", tile=64, overlap=16, threads=1)
    done = drain(iter_predict_blocks("~/m.safetensors", "~/img.tif", "~/out.ome.zarr", config))
    assert done.output == home / "out.ome.zarr"
    assert (home / "out.ome.zarr").is_dir()


def test_every_medical_reader_and_writer_takes_a_path_under_home(home, dicom_series):
    from napari_seg import medical as m

    ct = np.zeros((4, 8, 9), np.int16)
    ct[1:3, 2:6, 3:7] = 900
    series = dicom_series(home / "ct", ct)
    volume, grid = m.read_dicom("~/ct")
    assert volume.shape == ct.shape
    assert m.is_dicom("~/ct")
    assert m.is_dicom_folder("~/ct")
    assert m.holds_dicom("~/ct")
    assert m.is_volume("~/ct")
    assert m.dicom_slices("~/ct")[1].spacing == grid.spacing
    assert len(m.read_dicom_series("~/ct")[0]) == 1
    one_file = "~/ct/" + sorted(p.name for p in (home / "ct").iterdir())[0]
    assert m.is_dicom_file(one_file)
    assert series in m.dicom_file_series(one_file)
    import nibabel

    windowed = nibabel.Nifti1Image(np.zeros((3, 4, 5), np.int16), np.eye(4))
    windowed.header["cal_min"], windowed.header["cal_max"] = -100, 300
    nibabel.save(windowed, home / "w.nii.gz")
    assert m.display_range("~/w.nii.gz", m.read_nifti("~/w.nii.gz")[1]) == (-100, 300)

    labels = (volume > 0).astype(np.uint8)
    named = {1: ("tumour", ())}
    for name, write, read in [
        ("l.nii.gz", m.write_nifti, m.read_nifti),
        ("l.nrrd", m.write_nrrd, m.read_nrrd),
        ("l.mha", m.write_metaimage, m.read_metaimage),
    ]:
        write(f"~/{name}", labels, grid)
        np.testing.assert_array_equal(read(f"~/{name}")[0], labels)
        assert m.is_volume_file(f"~/{name}")
    assert m.nifti_is_label_map("~/l.nii.gz")
    m.write_nrrd("~/s.seg.nrrd", labels, grid, segments=named)
    assert m.nrrd_segments("~/s.seg.nrrd")[1][0] == "tumour"

    m.write_dicom_seg("~/seg.dcm", labels, "~/ct", named)
    m.write_rtstruct("~/rt.dcm", labels, "~/ct", named, roi_types={1: "ORGAN"})
    for path, is_kind, read, segments in [
        ("~/seg.dcm", m.is_dicom_seg, m.read_dicom_seg, m.dicom_seg_segments),
        ("~/rt.dcm", m.is_rtstruct, m.read_rtstruct, m.rtstruct_segments),
    ]:
        assert is_kind(path)
        assert m.is_segmentation(path)
        assert segments(path) == m.label_segments(path)
        assert m.label_segments(path)[1][0] == "tumour"
        np.testing.assert_array_equal(read(path)[0], labels)
        np.testing.assert_array_equal(m.read_segmentation(path)[0], labels)
    assert m.seg_series_uids("~/seg.dcm") == (series,)
    np.testing.assert_array_equal(m.read_seg_on_series("~/seg.dcm")[0], labels)
    assert m.rtstruct_roi_types("~/rt.dcm") == {1: "ORGAN"}
