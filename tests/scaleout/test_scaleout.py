"""Block-wise prediction into OME-Zarr, here and on a LocalCluster of processes."""

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import tifffile
import torch

from napari_seg._generators import Returning
from napari_seg.inference import PredictConfig, PredictWarning, predict
from napari_seg.models import ModelSpec, create_model, save_model
from napari_seg.sample_data import cells_2d, cells_3d
from napari_seg.scaleout import records
from napari_seg.scaleout.run import BlockDone, BlocksStarted, iter_predict_blocks

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr_models", reason="OME-Zarr validation needs the cluster extra")

CONFIG = PredictConfig(device="cpu", tile=64, overlap=16, batch_size=3, threads=1)


def _model(path, dims=2, classes=3):
    torch.manual_seed(0)
    options = {"depth": 2, "base_width": 4}
    names = ("background", "cell", "edge")[:classes]
    spec = ModelSpec("unet", 1, classes, spatial_dims=dims, options=options, class_names=names)
    model = create_model(spec)
    with torch.no_grad():  # an untrained net answers one class everywhere: make it vary
        for p in model.parameters():
            p.normal_(0, 0.5)
    save_model(model, path)
    return model


def _level0(path):
    return zarr.open_group(str(path), mode="r")["0"][:]


def _run(*args, **kwargs):
    events = Returning(iter_predict_blocks(*args, **kwargs))
    seen = list(events)
    return seen, events.value


@pytest.fixture
def plane(tmp_path):
    model = _model(tmp_path / "m.safetensors")
    image = cells_2d((300, 410))[0]
    tifffile.imwrite(tmp_path / "img.tif", image)
    return tmp_path, model, image


def test_ome_zarr_output_is_the_single_process_result_validated_with_colours(plane):
    tmp, model, image = plane
    expected = predict(model, image, CONFIG).labels
    seen, done = _run(tmp / "m.safetensors", tmp / "img.tif", tmp / "out.ome.zarr", CONFIG,
                      block=96)  # fmt: skip
    assert isinstance(seen[0], BlocksStarted)
    assert seen[0].total == 20
    assert [e.done for e in seen if isinstance(e, BlockDone)] == list(range(1, 21))
    np.testing.assert_array_equal(_level0(done.output), expected)
    group = zarr.open_group(str(done.output), mode="r")
    assert done.levels == 4  # down to one chunk: 410, 205, 103, 52 pixels wide
    assert group["1"].shape == (150, 205)  # nearest: every 2nd pixel
    np.testing.assert_array_equal(group["1"][:], expected[::2, ::2])
    meta = group.attrs["image-label"]
    assert [p["class"] for p in meta["properties"]] == ["background", "cell", "edge"]
    assert not (tmp / ".out.ome.zarr.partial").exists()  # staged, then renamed
    assert not (done.output / records.RECORD_DIR).exists()
    # the settings as a dict, as predict takes them, are the same request: nothing reruns
    _, again = _run(tmp / "m.safetensors", tmp / "img.tif", tmp / "out.ome.zarr",
                    CONFIG.to_dict(), block=96)  # fmt: skip
    assert again.skipped
    # napari-ome-zarr opens it as a multiscale Labels layer with the model's colours
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr")
    from napari.layers import Labels

    (data, kwargs, kind), *_ = napari_ome_zarr.napari_get_reader(str(done.output))(str(done.output))
    assert kind == "labels"
    assert len(data) == 4
    layer = Labels(data, **kwargs)
    for value, rgba in enumerate(model.spec.class_colors[1:], start=1):
        np.testing.assert_allclose(layer.colormap.map(value)[:3], rgba[:3], atol=1 / 255)


def test_an_ensemble_runs_block_by_block_as_in_one_process(plane, capsys):
    from napari_seg.cli import main
    from napari_seg.models import ensemble, load_model

    tmp, model, image = plane
    torch.manual_seed(5)
    other = create_model(model.spec)
    with torch.no_grad():
        for p in other.parameters():
            p.normal_(0, 0.5)
    save_model(other, tmp / "other.safetensors")
    files = [tmp / "m.safetensors", tmp / "other.safetensors"]
    both = ensemble([load_model(f) for f in files])
    expected = predict(both, image, CONFIG).labels
    assert (expected != predict(model, image, CONFIG).labels).any()  # the average differs
    _, done = _run(files, tmp / "img.tif", tmp / "e.ome.zarr", CONFIG, block=128)
    np.testing.assert_array_equal(_level0(done.output), expected)
    # The same request again is finished; the key is the members' digests, in order.
    _, again = _run(files, tmp / "img.tif", tmp / "e.ome.zarr", CONFIG, block=128)
    assert again.skipped
    key = records.request_key(tuple(files), tmp / "img.tif", CONFIG.to_dict(), 128)
    assert key != records.request_key(tuple(files[::-1]), tmp / "img.tif", CONFIG.to_dict(), 128)
    assert key != records.request_key(files[0], tmp / "img.tif", CONFIG.to_dict(), 128)
    # One file as a list keys as the file alone: outputs finished before stay finished.
    alone = records.request_key(files[0], tmp / "img.tif", CONFIG.to_dict(), 128)
    assert alone == records.request_key([files[0]], tmp / "img.tif", CONFIG.to_dict(), 128)
    # From the command line, with the members checked before any block runs.
    (tmp / "cfg.json").write_text(json.dumps(CONFIG.to_dict()))
    argv = ["predict", "--model", str(files[0]), "--model", str(files[1]), "--config",
            str(tmp / "cfg.json"), "--output-format", "ome-zarr", "--block", "128", "--quiet",
            "--output", str(tmp / "cli"), str(tmp / "img.tif")]  # fmt: skip
    assert main(argv) == 0
    assert "an ensemble of 2 models" in capsys.readouterr().err
    np.testing.assert_array_equal(_level0(tmp / "cli" / "img_labels.ome.zarr"), expected)
    _model(tmp / "four.safetensors", classes=2)
    argv[4] = str(tmp / "four.safetensors")
    argv[-2] = str(tmp / "cli2")
    assert main(argv) == 1
    assert "differs from model 1 in its number of classes" in capsys.readouterr().err
    assert not (tmp / "cli2").exists()


def test_blocks_smaller_than_the_tile_are_named_before_they_run(plane, capsys):
    """Each block predicts every tile touching its box, whole: blocks of 32 with tiles
    of 64 predicted the image about 4 times over without a word. The run still gives
    the single-process labels, and the command line says why it is slow."""
    from napari_seg.cli import main
    from napari_seg.inference import PredictWarning
    from napari_seg.inference.blocks import Block, small_block_warning

    tmp, model, image = plane
    seen, done = _run(tmp / "m.safetensors", tmp / "img.tif", tmp / "s.ome.zarr", CONFIG,
                      block=48)  # fmt: skip
    assert isinstance(seen[0], PredictWarning)
    assert "blocks of 48 pixels are smaller than the tile (64)" in seen[0].message
    assert isinstance(seen[1], BlocksStarted)
    np.testing.assert_array_equal(_level0(done.output), predict(model, image, CONFIG).labels)
    # blocks as large as the tile, or one block along the short axis only: no word
    assert small_block_warning([Block(0, (0, 1), ((0, 64), (0, 64))),
                                Block(1, (0, 1), ((0, 64), (64, 128)))], 64) is None  # fmt: skip
    assert small_block_warning([Block(0, (0, 1), ((0, 40), (0, 128))),
                                Block(1, (0, 1), ((0, 40), (128, 256)))], 64) is None  # fmt: skip
    (tmp / "cfg.json").write_text(json.dumps(CONFIG.to_dict()))
    argv = ["predict", "--model", str(tmp / "m.safetensors"), "--config", str(tmp / "cfg.json"),
            "--output-format", "ome-zarr", "--block", "48", "--quiet", "--output",
            str(tmp / "cli"), str(tmp / "img.tif")]  # fmt: skip
    assert main(argv) == 0
    assert "warning: " in capsys.readouterr().err


def test_a_block_run_says_what_a_single_run_says_of_the_image_s_intensities(plane):
    """NaN pixels (and an image outside a model's intensity window) were a warning of
    ``predict`` in one process but not of a block-wise run, whose statistics are taken
    once for every block: both now say it, in the same words."""
    tmp, net, image = plane
    holes = image.astype(np.float32)
    holes[:40] = np.nan
    tifffile.imwrite(tmp / "holes.tif", holes)
    seen, _done = _run(tmp / "m.safetensors", tmp / "holes.tif", tmp / "h.ome.zarr", CONFIG)
    said = [e.message for e in seen if isinstance(e, PredictWarning)]
    expected = predict(net, holes, CONFIG).warnings
    assert expected
    assert said == list(expected)
    assert "are NaN or infinite" in said[0]


def test_a_block_run_resamples_to_the_model_spacing_as_a_single_run(tmp_path):
    """A 3D model made for 1.5 x 1 x 1 on a 3 x 0.6 x 0.6 volume: every block resamples
    its source region, and the store (on the image's grid, with its voxel size) holds
    the single-process labels."""
    model = _model(tmp_path / "plain.safetensors", dims=3)
    model.spec = dataclasses.replace(model.spec, spacing=(1.5, 1.0, 1.0))
    save_model(model, tmp_path / "m.safetensors")
    image = cells_3d((30, 70, 76), seed=2)[0]
    np.save(tmp_path / "img.npy", image)
    config = CONFIG.with_(tile=32, overlap=10, spacing=(3.0, 0.6, 0.6))
    expected = predict(model, image, config).labels
    seen, done = _run(tmp_path / "m.safetensors", tmp_path / "img.npy", tmp_path / "o.ome.zarr",
                      config, block=32)  # fmt: skip
    assert seen[0].total == 9
    assert len(np.unique(expected)) > 1
    np.testing.assert_array_equal(_level0(done.output), expected)
    meta = zarr.open_group(str(done.output), mode="r").attrs["multiscales"][0]
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [3.0, 0.6, 0.6]
    assert [axis.get("unit") for axis in meta["axes"]] == [None] * 3  # none was given
    # With --spacing-unit the store states it (the model states none: no conversion).
    _, done = _run(tmp_path / "m.safetensors", tmp_path / "img.npy", tmp_path / "u.ome.zarr",
                   config.with_(spacing_unit="micrometer"), block=32)  # fmt: skip
    np.testing.assert_array_equal(_level0(done.output), expected)
    meta = zarr.open_group(str(done.output), mode="r").attrs["multiscales"][0]
    assert [axis.get("unit") for axis in meta["axes"]] == ["micrometer"] * 3


def test_a_calibrated_tiff_s_pixel_size_and_unit_go_into_the_ome_zarr(tmp_path):
    """An ImageJ stack of 3 x 0.6 x 0.6 um for a model made for 1.5 x 1 x 1: the blocks
    resample as with ``--spacing``, and the store carries the stack's size and unit."""
    model = _model(tmp_path / "plain.safetensors", dims=3)
    model.spec = dataclasses.replace(model.spec, spacing=(1.5, 1.0, 1.0))
    save_model(model, tmp_path / "m.safetensors")
    image = cells_3d((30, 70, 76), seed=2)[0]
    tifffile.imwrite(tmp_path / "img.tif", image, imagej=True, resolution=(1 / 0.6, 1 / 0.6),
                     metadata={"axes": "ZYX", "spacing": 3.0, "unit": "micron"})  # fmt: skip
    config = CONFIG.with_(tile=32, overlap=10)
    expected = predict(model, image, config.with_(spacing=(3.0, 0.6, 0.6))).labels
    assert not np.array_equal(expected, predict(model, image, config).labels)
    _, done = _run(tmp_path / "m.safetensors", tmp_path / "img.tif", tmp_path / "o.ome.zarr",
                   config, block=32)  # fmt: skip
    np.testing.assert_array_equal(_level0(done.output), expected)
    meta = zarr.open_group(str(done.output), mode="r").attrs["multiscales"][0]
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [3.0, 0.6, 0.6]
    assert [axis.get("unit") for axis in meta["axes"]] == ["micrometer"] * 3


@pytest.mark.parametrize("dims", [2, 3])
def test_a_nifti_runs_block_by_block_as_predict_reads_it(tmp_path, dims, monkeypatch):
    """A NIfTI of 3 x 0.8 x 0.9 mm: a 2D model takes its axial slices and a 3D model
    made for 1.5 x 1 x 1 its resampled volume, as the single-process ``predict``
    reads the file; the store keeps its voxel size, origin and unit. Block by block,
    the 2D model failed ('choose the axis to go through slice by slice'), the 3D model
    ran on the voxel grid as if it were the model's, and the store's scale was 1.
    The blocks read the file once (a .nii.gz is decompressed whole: it was read for
    every block), and the run keeps no volume after it ends."""
    nib = pytest.importorskip("nibabel")
    from napari_seg import _io
    from napari_seg.medical import read_nifti
    from napari_seg.scaleout import worker

    model = _model(tmp_path / "plain.safetensors", dims=dims)
    if dims == 3:
        model.spec = dataclasses.replace(model.spec, spacing=(1.5, 1.0, 1.0))
    save_model(model, tmp_path / "m.safetensors")
    image = cells_3d((20, 70, 76), seed=2)[0].astype(np.float32)
    affine = np.array([[-0.9, 0, 0, 40], [0, 0.8, 0, -30], [0, 0, 3.0, -12], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), affine), str(tmp_path / "ct.nii.gz"))
    volume, geometry = read_nifti(tmp_path / "ct.nii.gz")
    config = CONFIG.with_(tile=32, overlap=10)
    reads = {"axis": 0} if dims == 2 else {"spacing": geometry.spacing}
    expected = predict(model, volume, config.with_(**reads)).labels
    opened = []
    monkeypatch.setattr(_io, "read_image", lambda path: opened.append(path) or read_nifti(path)[0])
    seen, done = _run(tmp_path / "m.safetensors", tmp_path / "ct.nii.gz",
                      tmp_path / "o.ome.zarr", config, block=32)  # fmt: skip
    np.testing.assert_array_equal(_level0(done.output), expected)
    assert seen[0].total > 1
    assert len(opened) == 1
    assert worker._SOURCES == {}
    meta = zarr.open_group(str(done.output), mode="r").attrs["multiscales"][0]
    scale, shift = meta["datasets"][0]["coordinateTransformations"]
    np.testing.assert_allclose(scale["scale"], geometry.spacing)
    np.testing.assert_allclose(shift["translation"], geometry.origin)
    assert [axis.get("unit") for axis in meta["axes"]] == ["millimeter"] * 3
    assert not [e for e in seen if isinstance(e, PredictWarning)]


def test_an_oblique_nifti_block_by_block_is_said_to_lose_its_rotation(tmp_path):
    """OME-Zarr keeps a scale and a translation: the labels of an oblique volume lie on
    its voxel grid (as napari shows it), and the run says so; it said nothing."""
    nib = pytest.importorskip("nibabel")
    _model(tmp_path / "m.safetensors", dims=3)
    turn = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = turn @ np.diag([0.8, 0.9, 2.5])
    image = cells_3d((12, 40, 36), seed=1)[0].astype(np.float32).transpose(2, 1, 0)
    nib.save(nib.Nifti1Image(image, affine), str(tmp_path / "oblique.nii.gz"))
    seen, done = _run(tmp_path / "m.safetensors", tmp_path / "oblique.nii.gz",
                      tmp_path / "o.ome.zarr", CONFIG.with_(tile=32, overlap=8))  # fmt: skip
    said = [e.message for e in seen if isinstance(e, PredictWarning)]
    assert len(said) == 1
    assert "oblique" in said[0]
    assert "NIfTI" in said[0]
    assert _level0(done.output).shape == (12, 40, 36)


def test_an_interrupted_run_resumes_and_never_trusts_an_unrecorded_block(plane, monkeypatch):
    tmp, model, image = plane
    expected = predict(model, image, CONFIG).labels
    args = (tmp / "m.safetensors", tmp / "img.tif", tmp / "out.ome.zarr", CONFIG)
    real = records.record_block

    def record(staging, number):
        if number == 5:  # killed after block 5's chunks, before its record
            raise KeyboardInterrupt
        real(staging, number)

    monkeypatch.setattr(records, "record_block", record)
    with pytest.raises(KeyboardInterrupt):
        _run(*args, block=96)
    staging = tmp / ".out.ome.zarr.partial"
    assert records.finished_blocks(staging) == set(range(5))
    assert not (tmp / "out.ome.zarr").exists()
    # Blocks 0-4 are the first row of chunks (0/0/*); block 5 was written, not recorded.
    # Cut every chunk outside the recorded blocks, as a kill during a write would.
    level0 = staging / "0"
    chunks = [p for p in level0.rglob("*") if p.is_file() and not p.name.startswith(".")]
    cut = [p for p in chunks if p.relative_to(level0).parts[0] != "0"]
    assert cut  # block 5's chunk at least
    for chunk in cut:
        chunk.write_bytes(chunk.read_bytes()[:3])
    monkeypatch.setattr(records, "record_block", real)
    with pytest.raises(ValueError, match="unfinished run with other settings"):
        _run(*args[:3], CONFIG.with_(overlap=20), block=96)
    seen, done = _run(*args, block=96)
    assert seen[0].skipped == 5
    np.testing.assert_array_equal(_level0(done.output), expected)
    # finished: the same request again is skipped (nothing runs), another is refused
    seen, again = _run(*args, block=96)
    assert seen == []
    assert again.skipped
    with pytest.raises(ValueError, match="exists; pass --overwrite"):
        _run(*args, block=128)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    from napari_seg.scaleout.cluster import local_cluster

    cluster = local_cluster(2, threads=1, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.parametrize("case", ["stack", "volume"])
def test_a_local_cluster_gives_the_single_process_labels_bit_for_bit(tmp_path, client, case):
    if case == "stack":
        model = _model(tmp_path / "m.safetensors")
        image = np.stack([cells_2d((150, 170), seed=s)[0] for s in range(3)])
        config = CONFIG.with_(axis=0)
        block = 64
    else:
        model = _model(tmp_path / "m.safetensors", dims=3)
        image = cells_3d((60, 70, 76), seed=2)[0]
        config = CONFIG.with_(tile=32, overlap=10)
        block = 48
    np.save(tmp_path / "img.npy", image)
    torch.set_num_threads(1)  # the workers' count
    expected = predict(model, image, config).labels

    def count_loads():  # runs on each worker: count calls of load_model from now on
        import napari_seg.models as models

        original = getattr(models, "_original_load", models.load_model)
        models._original_load, models.loads = original, 0

        def counted(*args, **kwargs):
            models.loads += 1
            return original(*args, **kwargs)

        models.load_model = counted

    def loads():
        import napari_seg.models as models

        return models.loads

    client.run(count_loads)
    seen, done = _run(tmp_path / "m.safetensors", tmp_path / "img.npy", tmp_path / "o.ome.zarr",
                      config, block=block, client=client)  # fmt: skip
    assert seen[0].workers == 2
    assert seen[0].total > 3
    np.testing.assert_array_equal(_level0(done.output), expected)
    per_worker = client.run(loads)
    assert all(n <= 1 for n in per_worker.values())  # each worker loads the model once
    assert sum(per_worker.values()) >= 1


def test_a_killed_worker_has_its_blocks_rerun_and_the_output_is_complete(tmp_path, client):
    model = _model(tmp_path / "m.safetensors")
    image = cells_2d((420, 500), seed=4)[0]
    tifffile.imwrite(tmp_path / "img.tif", image)
    torch.set_num_threads(1)
    expected = predict(model, image, CONFIG).labels
    pids = client.run(os.getpid)
    events = Returning(iter_predict_blocks(tmp_path / "m.safetensors", tmp_path / "img.tif",
                                           tmp_path / "o.ome.zarr", CONFIG, block=64,
                                           client=client))  # fmt: skip
    killed = False
    for event in events:
        if isinstance(event, BlockDone) and not killed:
            os.kill(next(iter(pids.values())), signal.SIGKILL)  # a worker dies mid-run
            killed = True
    assert killed
    np.testing.assert_array_equal(_level0(events.value.output), expected)


def test_stopping_a_cluster_run_cancels_its_tasks_and_keeps_the_records(tmp_path, client):
    """Ctrl+C in the command (or Cancel in the dock) closes the generator: the tasks
    not yet run are cancelled, and the records name finished blocks only."""
    import time

    _model(tmp_path / "m.safetensors")
    tifffile.imwrite(tmp_path / "img.tif", cells_2d((640, 640), seed=7)[0])
    paths = (tmp_path / "m.safetensors", tmp_path / "img.tif", tmp_path / "o.ome.zarr")
    events = iter_predict_blocks(*paths, CONFIG, block=64, client=client)
    started = next(events)
    assert started.total == 100
    next(events)  # one block done
    events.close()
    staging = records.staging_path(tmp_path / "o.ome.zarr")
    time.sleep(3)  # a task that was running may still finish and record itself
    recorded = records.finished_blocks(staging)
    time.sleep(3)
    assert records.finished_blocks(staging) == recorded  # nothing runs any more
    assert 1 <= len(recorded) < 100
    assert not client.processing() or not any(client.processing().values())
    assert not (tmp_path / "o.ome.zarr").exists()


def test_the_command_line_runs_on_a_local_cluster(plane, cli_child):
    tmp, model, image = plane
    torch.set_num_threads(1)
    expected = predict(model, image, CONFIG).labels
    (tmp / "cfg.json").write_text(json.dumps(CONFIG.to_dict()))
    argv = ["predict", "--model", tmp / "m.safetensors", "--output", tmp / "out",
            "--config", tmp / "cfg.json", "--cluster", "local:2", "--block", "128",
            tmp / "img.tif"]  # fmt: skip
    done = cli_child(argv)
    assert done.finish(timeout=300) == 0, done.err
    assert "dashboard at http" in done.out + done.err
    np.testing.assert_array_equal(_level0(tmp / "out" / "img_labels.ome.zarr"), expected)
    again = cli_child(argv)
    assert again.finish(timeout=300) == 0, again.err  # the same command: finished, skipped
    assert "finished by an earlier run" in again.out
    other = [*argv[:-2], "96", argv[-1]]  # another block side: refused
    refused = cli_child(other)
    assert refused.finish(timeout=300) != 0
    assert "--overwrite" in refused.err


def test_a_folder_of_files_runs_several_at_once_on_the_cluster(tmp_path, cli_child):
    """Thousands of small plates: files run concurrently (each one block), so every
    worker is busy; each output is the single-process result."""
    model = _model(tmp_path / "m.safetensors")
    folder = tmp_path / "plates"
    folder.mkdir()
    images = {f"well{i}": cells_2d((96, 120), seed=10 + i)[0] for i in range(5)}
    for name, image in images.items():
        tifffile.imwrite(folder / f"{name}.tif", image)
    (tmp_path / "cfg.json").write_text(json.dumps(CONFIG.to_dict()))
    argv = ["predict", "--model", tmp_path / "m.safetensors", "--output", tmp_path / "out",
            "--config", tmp_path / "cfg.json", "--cluster", "local:2", folder]  # fmt: skip
    done = cli_child(argv)
    assert done.finish(timeout=300) == 0, done.err
    assert done.out.count("_labels.ome.zarr (") == 5
    torch.set_num_threads(1)
    for name, image in images.items():
        expected = predict(model, image, CONFIG).labels
        np.testing.assert_array_equal(_level0(tmp_path / "out" / f"{name}_labels.ome.zarr"),
                                      expected)  # fmt: skip


def test_ctrl_c_stops_a_folder_run_on_a_cluster_at_once(tmp_path, cli_child):
    """Ctrl+C while several files run on a LocalCluster: exit 130 within seconds, no
    traceback, no output under its final name unless complete; the next run with
    the same command resumes and finishes."""
    import time

    _model(tmp_path / "m.safetensors")
    folder = tmp_path / "plates"
    folder.mkdir()
    for i in range(6):
        tifffile.imwrite(folder / f"well{i}.tif", cells_2d((256, 256), seed=20 + i)[0])
    (tmp_path / "cfg.json").write_text(json.dumps(CONFIG.to_dict()))
    argv = ["predict", "--model", tmp_path / "m.safetensors", "--output", tmp_path / "out",
            "--config", tmp_path / "cfg.json", "--cluster", "local:2", "--block", "64",
            folder]  # fmt: skip
    child = cli_child(argv)
    child.wait_until(
        lambda: list(tmp_path.glob("out/.*.partial/.napari-seg-blocks/*.done")),
        "finished block",
        poll=0.1,
    )
    child.interrupt()
    start = time.monotonic()
    code = child.finish(timeout=60)
    assert code == 130, child.tail()
    assert time.monotonic() - start < 30, child.tail()
    assert "Traceback" not in child.err
    for result in (tmp_path / "out").glob("*_labels.ome.zarr"):  # only complete ones
        assert _level0(result).shape == (256, 256)
    again = cli_child(argv)
    assert again.finish(timeout=300) == 0, again.err
    assert len(list((tmp_path / "out").glob("*_labels.ome.zarr"))) == 6


def _worker_log_level():
    """The lowest level the worker's distributed log handlers print."""
    import logging

    handlers = logging.getLogger("distributed").handlers
    return min(h.level for h in handlers if isinstance(h, logging.StreamHandler))


@pytest.mark.parametrize(("quiet", "level"), [(True, 50), (False, 30)])
def test_a_quiet_local_cluster_logs_only_critical_messages_in_its_workers(quiet, level):
    """The command line without --verbose: the workers of the LocalCluster it starts
    do not print the heartbeat tracebacks they log while it closes after Ctrl+C
    (logging.ERROR); the Python API keeps dask's default (warnings)."""
    from napari_seg.scaleout.cluster import connect

    pytest.importorskip("distributed")
    client = connect("local:1", quiet=quiet)
    cluster = client.cluster
    try:
        assert set(client.run(_worker_log_level).values()) == {level}
    finally:
        client.close()
        cluster.close()


def test_a_cluster_client_leaves_the_process_s_own_dask_scheduler_alone():
    """connect() made its Client the process's default: while a run was on, napari's
    own dask reads (a lazy layer's chunks) went to the cluster, and a test that
    closed clients out of order left later computations asking for a Client that no
    longer existed ("Requested dask.distributed scheduler but no Client active")."""
    import dask
    import dask.array as da

    distributed = pytest.importorskip("distributed")
    from napari_seg.scaleout.cluster import connect

    before = dask.config.get("scheduler", None)
    client = connect("local:1", quiet=True)
    cluster = client.cluster
    try:
        assert dask.config.get("scheduler", None) == before
        try:
            default = distributed.default_client()
        except ValueError:  # "No clients found"
            default = None
        assert default is not client
        assert int(da.ones(6, chunks=2).sum().compute()) == 6  # here, not on the cluster
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6  # the run's own work
    finally:
        client.close()
        cluster.close()
    assert dask.config.get("scheduler", None) == before


def test_cluster_arguments_are_checked(tmp_path):
    from napari_seg.scaleout.cluster import connect

    pytest.importorskip("distributed")
    for spec in ("local:two", "local:0", "local:100000"):
        with pytest.raises(ValueError, match="whole number of workers from 1 to 256"):
            connect(spec)
    with pytest.raises(ValueError, match="scheduler address"):
        connect("mycluster")
    (tmp_path / "q.yaml").write_text("jobqueue:\n  kubernetes: {cores: 4}\n")
    with pytest.raises(ValueError, match="one scheduler under 'jobqueue:'"):
        connect(config_file=tmp_path / "q.yaml")
    # no scheduler at the address: named, with what to do (distributed's own message
    # only said it timed out)
    import dask

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(
            OSError, match=r"no Dask scheduler answered at tcp://127.0.0.1:9 .*dask scheduler"
        ),
    ):
        connect("tcp://127.0.0.1:9")


def test_a_scheduler_s_address_gives_a_working_client():
    """connect() makes the Client in a thread of its own (to bound a handshake that never
    ends): the Client it returns works from the caller's thread."""
    distributed = pytest.importorskip("distributed")
    from napari_seg.scaleout.cluster import connect

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        client = connect(cluster.scheduler_address)
        try:
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        finally:
            client.close()


@pytest.mark.parametrize("reply", [None, b"HTTP/1.0 400 Bad request\r\n\r\n" * 4])
def test_a_server_that_is_no_scheduler_is_named_in_bounded_time(reply, monkeypatch):
    """A port where a web server listens (the dashboard's 8787 given for the
    scheduler's 8786) held distributed's handshake for ever, or failed with "Unable to
    allocate 3.07 EiB" read from the reply; a dashboard URL was tried as an address."""
    import socket
    import threading
    import time

    import dask

    from napari_seg.scaleout import cluster as module

    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match=r"is a web address \(the Dask dashboard's"):
        module.connect("http://127.0.0.1:8787/status")
    server = socket.create_server(("127.0.0.1", 0))
    port, held = server.getsockname()[1], []

    def serve() -> None:  # takes connections; answers as a web server would, or never
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                conn.recv(65536)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(module, "HANDSHAKE_GRACE_S", 1.0)
    start = time.perf_counter()
    try:
        with (
            dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
            pytest.raises(OSError, match=f"127.0.0.1:{port}.*not the dashboard's 8787"),
        ):
            module.connect(f"tcp://127.0.0.1:{port}")
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert time.perf_counter() - start < 15


def test_labels_go_into_an_ome_zarr_source_and_napari_finds_them(plane, capsys):
    tmp, model, image = plane
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    source = tmp / "img.ome.zarr"
    write_image(image, zarr.open_group(str(source), mode="w", zarr_format=2), axes="yx",
                fmt=FormatV04())  # fmt: skip
    # the same input: statistics sample a chunked array by its chunks
    from napari_seg._io import read_image

    expected = predict(model, read_image(source), CONFIG).labels  # its finest level
    (tmp / "cfg.json").write_text(json.dumps(CONFIG.to_dict()))
    from napari_seg.cli import main

    args = ["predict", "--model", str(tmp / "m.safetensors"), "--config", str(tmp / "cfg.json"),
            "--into-source", "cells", "--quiet", str(source)]  # fmt: skip
    assert main(args) == 0
    np.testing.assert_array_equal(_level0(source / "labels" / "cells"), expected)
    assert zarr.open_group(str(source / "labels"), mode="r").attrs["labels"] == ["cells"]
    assert main(args) == 0  # the same command again: finished, skipped
    assert main([*args[:-1], "--block", "64", args[-1]]) == 1  # another: refused
    np.testing.assert_array_equal(_level0(source / "labels" / "cells"), expected)
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr")
    layers = napari_ome_zarr.napari_get_reader(str(source))(str(source))
    assert [kind for *_, kind in layers] == ["image", "labels"]
    capsys.readouterr()
    assert main([*args[:-1], str(tmp / "img.tif")]) != 0
    assert "needs an OME-Zarr image" in capsys.readouterr().err
    # A labels group whose list of label images is not a list of names: refused before
    # any work (it was read as letters, or failed after the run), the group untouched.
    zarr.open_group(str(source / "labels"), mode="r+").attrs["labels"] = "cells"
    other = [("other" if a == "cells" else a) for a in args]
    assert main(other) == 1
    assert "not a list of names" in capsys.readouterr().err
    assert not (source / "labels" / "other").exists()
    assert zarr.open_group(str(source / "labels"), mode="r").attrs["labels"] == "cells"


def test_an_ome_zarr_source_s_voxel_size_is_used_and_kept(tmp_path, capsys):
    """An OME-Zarr volume declaring 2 x 0.5 x 0.5 (and an offset) for a model made for
    1 x 1 x 1: prediction resamples, as for a NIfTI header, and the labels written
    into the source carry the image's own scale and translation, so viewers overlay
    them on it (they were written at scale 1)."""
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    model = _model(tmp_path / "plain.safetensors", dims=3)
    model.spec = dataclasses.replace(model.spec, spacing=(1.0, 1.0, 1.0))
    save_model(model, tmp_path / "m.safetensors")
    volume = cells_3d((12, 48, 40), seed=3)[0]
    source = tmp_path / "vol.ome.zarr"
    group = zarr.open_group(str(source), mode="w", zarr_format=2)
    write_image(volume, group, axes="zyx", fmt=FormatV04(), scale_factors=[])
    multiscales = group.attrs["multiscales"]
    multiscales[0]["axes"] = [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    multiscales[0]["datasets"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [2.0, 0.5, 0.5]},
        {"type": "translation", "translation": [4.0, 1.0, 0.0]},
    ]
    group.attrs["multiscales"] = multiscales
    from napari_seg._io import read_image
    from napari_seg.cli import main

    config = CONFIG.with_(tile=32, overlap=8)
    expected = predict(model, read_image(source), config.with_(spacing=(2.0, 0.5, 0.5))).labels
    assert len(np.unique(expected)) > 1
    (tmp_path / "cfg.json").write_text(json.dumps(config.to_dict()))
    base = ["predict", "--model", str(tmp_path / "m.safetensors"), "--config",
            str(tmp_path / "cfg.json"), "--quiet"]  # fmt: skip
    assert main([*base, "--into-source", "cells", str(source)]) == 0
    np.testing.assert_array_equal(_level0(source / "labels" / "cells"), expected)
    labels = zarr.open_group(str(source / "labels" / "cells"), mode="r")
    level0 = labels.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert level0 == [{"type": "scale", "scale": [2.0, 0.5, 0.5]},
                      {"type": "translation", "translation": [4.0, 1.0, 0.0]}]  # fmt: skip
    # ...in the source's unit
    assert [axis.get("unit") for axis in labels.attrs["multiscales"][0]["axes"]] == [
        "micrometer"
    ] * 3
    # the single-process run (a TIFF) resamples the same way
    assert main([*base, "--output", str(tmp_path / "out"), str(source)]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "vol_labels.tif"), expected)
    # --spacing overrides the file's: here the model's own, so no resampling
    plain = predict(model, read_image(source), config).labels
    again = [*base, "--output", str(tmp_path / "again"), str(source), "--spacing", "1", "1", "1"]
    assert main(again) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "again" / "vol_labels.tif"), plain)
    # a --spacing unlike the file's is in a unit nobody stated: its axes get none
    assert main([*base, "--into-source", "other", str(source), "--spacing", "1", "1", "1"]) == 0
    other = zarr.open_group(str(source / "labels" / "other"), mode="r").attrs["multiscales"][0]
    assert other["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 1.0]
    assert [axis.get("unit") for axis in other["axes"]] == [None] * 3


def test_probabilities_are_a_float16_ome_zarr_image_beside_the_labels(plane):
    tmp, model, image = plane
    config = CONFIG.with_(probabilities=True)
    expected = predict(model, image, config)
    _, done = _run(tmp / "m.safetensors", tmp / "img.tif", tmp / "cells_labels.ome.zarr", config,
                   block=128)  # fmt: skip
    np.testing.assert_array_equal(_level0(done.output), expected.labels)
    probs = zarr.open_group(str(tmp / "cells_probabilities.ome.zarr"), mode="r")
    assert probs["0"].dtype == np.float16
    np.testing.assert_array_equal(probs["0"][:], expected.probabilities)
    axes = [a["name"] for a in probs.attrs["multiscales"][0]["axes"]]
    assert axes == ["c", "y", "x"]
    assert not (done.output / ".probabilities").exists()


def test_ome_zarr_outputs_follow_the_output_rule_of_every_command(plane, capsys):
    """One rule for files and OME-Zarr folders (cli._common.check_outputs): an existing
    output of another request is refused unless --overwrite, an output that would
    replace an input of the batch is refused always, both before any work."""
    from napari_seg.cli import main

    tmp, _, image = plane
    model = str(tmp / "m.safetensors")
    out = tmp / "out"
    base = ["predict", "--model", model, "--output-format", "ome-zarr", "--device", "cpu"]
    assert main([*base, "--output", str(out), str(tmp / "img.tif")]) == 0
    capsys.readouterr()
    # Another request (another block side) into the same output: refused, untouched.
    before = sorted(p.name for p in (out / "img_labels.ome.zarr").rglob("*"))
    assert main([*base, "--block", "128", "--output", str(out), str(tmp / "img.tif")]) == 1
    assert "img_labels.ome.zarr already exist; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "img_labels.ome.zarr").rglob("*")) == before
    # The same request again: finished, skipped (not refused).
    assert main([*base, "--output", str(out), str(tmp / "img.tif")]) == 0
    assert "finished by an earlier run" in capsys.readouterr().out
    # x.tif's output would be the input x_labels.ome.zarr: refused even with --overwrite.
    tifffile.imwrite(out / "x.tif", image)
    (out / "img_labels.ome.zarr").rename(out / "x_labels.ome.zarr")
    inputs = [str(out / "x.tif"), str(out / "x_labels.ome.zarr")]
    for extra in ([], ["--overwrite"]):
        assert main([*base, *extra, "--output", str(out), *inputs]) == 1
        assert "would replace input(s) of this batch" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "x_labels.ome.zarr").rglob("*")) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [1, 2]\nb: *a\njobqueue: {slurm: {cores: 4}}\n", "anchors and aliases"),
        ("jobqueue:\n  slurm: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
        ("jobqueue: [1, 2\n", "not valid YAML"),
        ("jobqueue: slurm\n", "one scheduler under 'jobqueue:'"),
        ("jobqueue: {slurm: {cores: 4}}\nnapari-seg: {jobs: 1000000}\n", "from 1 to 10000"),
        ("jobqueue: {slurm: {cores: 4}}\nnapari-seg: {jobs: two}\n", "from 1 to 10000"),
    ],
)
def test_a_bad_cluster_config_file_is_one_line_before_anything_starts(tmp_path, text, message):
    pytest.importorskip("dask_jobqueue")
    from napari_seg.scaleout.cluster import connect

    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        connect(config_file=path)
    assert "\n" not in str(caught.value)


def test_a_queue_whose_submit_command_is_missing_fails_at_once(tmp_path, monkeypatch):
    """Without `sbatch` on the PATH (not a login node), SLURM jobs would never start and
    the run would wait for workers for ever: refused before any job is submitted."""
    pytest.importorskip("dask_jobqueue")
    from napari_seg.scaleout.cluster import connect

    monkeypatch.setenv("PATH", str(tmp_path))
    path = tmp_path / "slurm.yaml"
    path.write_text("jobqueue: {slurm: {cores: 4, memory: 8GB}}\n")
    with pytest.raises(ValueError, match="'sbatch', which is not on this machine's PATH"):
        connect(config_file=path)


@pytest.mark.parametrize("block", ["0", "5", "70000"])
def test_a_bad_block_side_is_one_error_before_any_file_is_read(tmp_path, capsys, block):
    """`--block 0` ran a single-process TIFF run instead; a bad side failed once per file
    of a folder. Now: one usage error, nothing written."""
    from napari_seg.cli import main

    _model(tmp_path / "m.safetensors")
    folder = tmp_path / "plates"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"w{i}.tif", cells_2d((64, 64), seed=i)[0])
    args = ["predict", "--model", str(tmp_path / "m.safetensors"), "--device", "cpu",
            "--output", str(tmp_path / "out"), "--block", block, str(folder)]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"napari-seg predict: error: block must be a whole number of pixels from 16 to 65536, "
        f"got {block}"
    ]
    assert not (tmp_path / "out").exists()


def test_our_ngff_units_are_those_ome_zarr_knows():
    """The unit tables that convert OME-Zarr voxel sizes list NGFF's units, as the
    ome-zarr library (which writes our outputs) does."""
    from ome_zarr.axes import KNOWN_SPATIAL_UNITS, KNOWN_TEMPORAL_UNITS

    from napari_seg._units import LENGTH_UNITS, TIME_UNITS

    assert set(LENGTH_UNITS) == set(KNOWN_SPATIAL_UNITS)
    assert set(KNOWN_TEMPORAL_UNITS) == TIME_UNITS


def test_a_worker_reads_a_source_again_once_it_changed(tmp_path, dicom_series, monkeypatch):
    """The worker's copy of a source is the file as it is now: a DICOM series exported
    again into its folder under the same names is read anew (the folder's own time
    does not change when its files are rewritten)."""
    from napari_seg import _io
    from napari_seg.scaleout import worker

    monkeypatch.setattr(worker, "_SOURCES", {})
    opened = []
    real = _io.read_image
    monkeypatch.setattr(_io, "read_image", lambda path: opened.append(path) or real(path))
    folder = tmp_path / "ct"
    dicom_series(folder, np.zeros((3, 8, 8), np.int16), names=["a.dcm", "b.dcm", "c.dcm"])
    first = worker._worker_source(str(folder))
    assert worker._worker_source(str(folder)) is first
    assert len(opened) == 1
    folder_time = folder.stat().st_mtime_ns
    dicom_series(folder, np.full((3, 8, 8), 7, np.int16), names=["a.dcm", "b.dcm", "c.dcm"])
    assert folder.stat().st_mtime_ns == folder_time  # rewritten in place
    for path in folder.iterdir():  # a second later, whatever the file system's clock tick
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    again = worker._worker_source(str(folder))
    assert len(opened) == 2
    assert float(np.asarray(again).max()) == 7 - 1024
