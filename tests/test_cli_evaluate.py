"""``napari-seg evaluate``: tables, JSON equal to the core, settings, clear errors."""

import csv
import json
import re

import numpy as np
import pytest
import tifffile

from napari_seg.cli import main
from napari_seg.metrics import EvaluateConfig, evaluate
from napari_seg.sample_data import cells_3d


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    _, gt = cells_3d((4, 48, 64), seed=3)
    pred = gt.copy()
    pred[1] = 0  # one slice predicted as background
    pred[:, :5, :5] = 2
    tifffile.imwrite(folder / "gt.tif", gt)
    np.save(folder / "pred.npy", pred.astype(np.int32))
    return folder / "pred.npy", folder / "gt.tif", pred, gt


def _csv_rows(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def run_json(capsys, *args):
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_equals_the_core(files, capsys):
    pred_path, gt_path, pred, gt = files
    out = run_json(capsys, "--pred", str(pred_path), "--gt", str(gt_path))
    expect = evaluate(pred, gt).to_dict()
    assert out == json.loads(json.dumps(expect))
    assert out["mode"] == "semantic"
    assert len(out["classes"]) == len(np.unique(gt))
    assert {"mean_iou", "mean_iou_foreground", "frequency_weighted_iou", "pixel_accuracy"} <= set(
        out
    )


def test_ignore_instance_and_per_slice(files, capsys):
    pred_path, gt_path, pred, gt = files
    args = ["--pred", str(pred_path), "--gt", str(gt_path)]
    ignored = run_json(capsys, *args, "--ignore", "0")
    assert ignored["config"]["ignore_labels"] == [0]
    assert [c["id"] for c in ignored["classes"]] == [c for c in np.unique(gt).tolist() if c]
    inst = run_json(capsys, *args, "--instance", "--thresholds", "0.5", "0.75")
    core = evaluate(pred, gt, EvaluateConfig(mode="instance", thresholds=(0.5, 0.75)))
    assert [r["TP"] for r in inst["thresholds"]] == core.scores.tp.tolist()
    sliced = run_json(capsys, *args, "--per-slice", "0")
    assert len(sliced["per_slice"]["values"]) == 4
    assert sliced["per_slice"]["values"][1] < sliced["per_slice"]["values"][0]


def test_text_table_names_classes(files, capsys):
    pred_path, gt_path, *_ = files
    argv = ["evaluate", "--pred", str(pred_path), "--gt", str(gt_path)]
    assert main([*argv, "--class-names", "background", "nucleus", "membrane"]) == 0
    text = capsys.readouterr().out
    assert "nucleus" in text
    assert "mean IoU (no background)" in text


def test_config_file_then_flags(files, tmp_path, capsys):
    pred_path, gt_path, *_ = files
    config = tmp_path / "eval.json"
    config.write_text(EvaluateConfig(ignore_labels=(0,), background=None).to_json())
    args = ["--pred", str(pred_path), "--gt", str(gt_path), "--config", str(config)]
    out = run_json(capsys, *args, "--background", "1")
    assert out["config"]["ignore_labels"] == [0]
    assert out["config"]["background"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gt", "missing.tif"], "--gt: input not found"),
        (["--gt", "{float}"], "gt must hold integer label ids, got float32 values that are not"),
        (["--gt", "{small}"], "same shape"),
        (["--gt", "{gt}", "--thresholds", "1.5"], r"thresholds must be in \(0, 1\]"),
        (["--gt", "{gt}", "--config", "{badjson}"], "not valid JSON"),
    ],
)
def test_errors_are_one_clear_line(files, tmp_path, capsys, extra, message):
    pred_path, gt_path, *_ = files
    np.save(tmp_path / "float.npy", np.full((4, 48, 64), 0.5, np.float32))  # not ids
    np.save(tmp_path / "small.npy", np.zeros((4, 48, 60), np.uint8))
    (tmp_path / "bad.json").write_text("{")
    paths = {
        "float": tmp_path / "float.npy",
        "small": tmp_path / "small.npy",
        "gt": gt_path,
        "badjson": tmp_path / "bad.json",
    }
    extra = [e.format(**paths) if e.startswith("{") else e for e in extra]
    if extra[1] == "missing.tif":
        extra[1] = str(tmp_path / "missing.tif")
    assert main(["evaluate", "--pred", str(pred_path), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-seg evaluate: error:")
    assert "\n" not in err
    assert re.search(message, err)


def test_surface_flags_match_the_core(files, capsys):
    pred_path, gt_path, pred, gt = files
    args = ["--pred", str(pred_path), "--gt", str(gt_path), "--surface"]
    out = run_json(
        capsys, *args, "--spacing", "4", "0.5", "0.5", "--tolerance", "1", "--unit", "mm"
    )
    config = EvaluateConfig(surface=True, spacing=(4.0, 0.5, 0.5), tolerance=1.0, unit="mm")
    assert out["surface"] == json.loads(json.dumps(evaluate(pred, gt, config).to_dict()["surface"]))
    assert out["surface"]["volume_unit"] == "mL"
    assert main(["evaluate", *args]) == 0
    text = capsys.readouterr().out
    assert "HD95" in text
    assert "surface Dice @1" in text
    assert main(["evaluate", *args, "--spacing", "1", "1"]) == 1
    assert "spacing has 2 values for a 3D array" in capsys.readouterr().err
    # --unit is read as --spacing-unit is: "furlong" was shown as one; "millimetre"
    # as such gave volumes in millimetre^3 rather than mL.
    spaced = [*args, "--spacing", "4", "0.5", "0.5"]
    assert run_json(capsys, *spaced, "--unit", "millimetre")["surface"]["volume_unit"] == "mL"
    with pytest.raises(SystemExit):
        main(["evaluate", *spaced, "--unit", "furlong"])
    assert "argument --unit: unknown length unit 'furlong'" in capsys.readouterr().err


def test_an_ome_zarr_ground_truth_gives_its_voxel_size(files, tmp_path, capsys):
    """Surface distances use an OME-Zarr ground truth's scale, as a NIfTI's header."""
    zarr = pytest.importorskip("zarr")
    pred_path, _, pred, gt = files
    group = zarr.open_group(str(tmp_path / "gt.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", shape=gt.shape, dtype=gt.dtype)[:] = gt
    group.attrs["multiscales"] = [{"datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [4.0, 0.5, 0.5]}]}]}]  # fmt: skip
    args = ["--pred", str(pred_path), "--gt", str(tmp_path / "gt.ome.zarr"), "--surface"]
    out = run_json(capsys, *args)
    config = EvaluateConfig(surface=True, spacing=(4.0, 0.5, 0.5))
    assert out["surface"] == json.loads(json.dumps(evaluate(pred, gt, config).to_dict()["surface"]))
    assert run_json(capsys, *args, "--spacing", "1", "1", "1")["surface"] != out["surface"]


def test_folders_pair_by_name_score_each_pair_and_pool_them(tmp_path, capsys):
    from napari_seg.metrics import pool_evaluations

    gt_dir, pred_dir = tmp_path / "data", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    arrays = {}
    for seed, name in enumerate("abc"):
        image, gt = cells_3d((2, 40, 48 + 8 * seed), seed=seed)
        pred = gt.copy()
        pred[:, : 10 + 5 * seed] = 0
        arrays[name] = pred, gt
        tifffile.imwrite(gt_dir / f"{name}.tif", image)  # a dataset's images sit beside
        tifffile.imwrite(gt_dir / f"{name}_labels.tif", gt)
        tifffile.imwrite(pred_dir / f"{name}_labels.tif", pred if name != "c" else pred[:, 1:])
        tifffile.imwrite(pred_dir / f"{name}_probabilities.tif", np.zeros((2, 3), np.float32))
    tifffile.imwrite(pred_dir / "d_labels.tif", gt)
    argv = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir)]
    assert main([*argv, "--json"]) == 1  # pair c has another shape
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [image["name"] for image in out["images"]] == ["a", "b"]
    core = [evaluate(*arrays[name]) for name in "ab"]
    expect = pool_evaluations(["a", "b"], core)
    assert out == json.loads(json.dumps(expect.to_dict()))
    assert "1 prediction without a ground-truth file left out: d_labels.tif" in captured.err
    assert re.search(r"error: .*c_labels\.tif against .*c_labels\.tif: .*shape", captured.err)
    assert "1 of 3 pair(s) failed and are not in the pooled scores" in captured.err
    (pred_dir / "c_labels.tif").unlink()
    assert main([*argv, "--instance"]) == 0
    text = capsys.readouterr().out
    for part in ("2 pairs", "mean over images", "all 2 pairs pooled:", "true objects"):
        assert part in text
    # the table as CSV, as the dock exports it: a row per pair, then the means
    assert main([*argv, "--csv", str(tmp_path / "pairs.csv")]) == 0
    rows = _csv_rows(tmp_path / "pairs.csv")
    assert [r["image"] for r in rows] == ["a", "b", "mean over images"]
    assert float(rows[0]["mean IoU (no background)"]) == pytest.approx(
        core[0].scores.mean_iou_foreground
    )


def test_csv_holds_the_printed_table_and_is_written_only_when_it_may_be(files, tmp_path, capsys):
    """The Evaluate dock exported CSV; the command line printed text or JSON only."""
    pred_path, gt_path, pred, gt = files
    target = tmp_path / "scores.csv"
    argv = ["evaluate", "--pred", str(pred_path), "--gt", str(gt_path), "--csv", str(target)]
    assert main(argv) == 0
    rows = _csv_rows(target)
    expected = evaluate(pred, gt).rows()
    assert [r["class"] for r in rows] == [str(r["class"]) for r in expected]
    assert float(rows[0]["IoU"]) == pytest.approx(expected[0]["IoU"])
    assert rows[-1]["precision"] == ""  # "-" in the text table: no value
    capsys.readouterr()
    before = target.read_bytes()
    for extra, message in (
        ([], "already exists"),  # never replaced unasked
        (["--csv", str(tmp_path / "scores.txt")], "--csv writes a .csv file, got scores.txt"),
    ):
        assert main([*argv, *extra]) == 1
        assert message in capsys.readouterr().err
    assert target.read_bytes() == before
    assert main([*argv, "--overwrite", "--instance"]) == 0
    assert _csv_rows(target)[0]["IoU threshold"] == "0.5"


def test_object_scores_of_a_folder_read_predict_s_objects_files(tmp_path, capsys, make_instances):
    """predict --objects writes NAME_objects beside NAME_labels: --instance scores
    those, semantic scores the labels."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    objects = make_instances((48, 64), n=8)[1].astype(np.int32)
    tifffile.imwrite(gt_dir / "a.tif", objects)
    tifffile.imwrite(pred_dir / "a_labels.tif", (objects > 0).astype(np.uint8))
    tifffile.imwrite(pred_dir / "a_objects.tif", objects)
    argv = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--json"]
    out = run_json(capsys, *argv[1:-1], "--instance")
    assert out["pooled"]["n_pred"] == int(objects.max())
    assert out["pooled"]["thresholds"][0]["F1"] == 1.0
    semantic = run_json(capsys, *argv[1:-1])
    assert [c["id"] for c in semantic["pooled"]["classes"]][:2] == [0, 1]


@pytest.mark.parametrize(("axes", "sliced"), [("TYX", True), ("ZYX", False), (None, False)])
def test_a_tiff_time_lapse_is_also_scored_frame_by_frame(files, tmp_path, capsys, axes, sliced):
    _, _, pred, gt = files
    meta = {} if axes is None else {"imagej": True, "metadata": {"axes": axes}}
    tifffile.imwrite(tmp_path / "gt.tif", gt.astype(np.uint8), **meta)
    tifffile.imwrite(tmp_path / "pred.tif", pred.astype(np.uint8))  # names no axes
    out = run_json(capsys, "--pred", str(tmp_path / "pred.tif"), "--gt", str(tmp_path / "gt.tif"))
    assert out["config"]["slice_axis"] == (0 if sliced else None)
    assert ("per_slice" in out) == sliced
    # surfaces of a time-lapse: frame by frame in 2D (they were measured across time)
    surface = run_json(capsys, "--pred", str(tmp_path / "pred.tif"), "--gt",
                       str(tmp_path / "gt.tif"), "--surface")["surface"]  # fmt: skip
    assert surface["series"] == (4 if sliced else 1)
    assert len(surface["spacing"]) == (2 if sliced else 3)


def test_a_decathlon_dataset_s_class_names_name_the_rows(tmp_path, capsys):
    """predict's out/la_003_0000_labels.tif against Task/labelsTs/la_003.tif: the
    class names come from Task/dataset.json."""
    _, truth = cells_3d((3, 32, 32), seed=1)
    (tmp_path / "Task" / "labelsTs").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    tifffile.imwrite(tmp_path / "Task" / "labelsTs" / "la_003.tif", truth)
    tifffile.imwrite(tmp_path / "out" / "la_003_0000_labels.tif", truth)
    labels = {"background": 0, "cytoplasm": 1, "nucleus": 2}
    (tmp_path / "Task" / "dataset.json").write_text(json.dumps({"labels": labels}))
    data = run_json(capsys, "--pred", str(tmp_path / "out"), "--gt",
                    str(tmp_path / "Task" / "labelsTs"))  # fmt: skip
    assert json.dumps(data).count('"nucleus"') >= 1
    assert '"class 2"' not in json.dumps(data)


def test_an_nnunet_ignore_label_is_not_scored(tmp_path, capsys):
    """nnU-Net's "ignore" label (the largest id, named so in dataset.json) is left out
    of the scores, as nnU-Net's evaluation leaves it out (it was scored as a class)."""
    _, truth = cells_3d((3, 32, 32), seed=1)
    (tmp_path / "Task" / "labelsTs").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    gt = truth.astype(np.uint8)
    gt[:, :4] = 3  # not annotated
    tifffile.imwrite(tmp_path / "Task" / "labelsTs" / "la_003.tif", gt)
    tifffile.imwrite(tmp_path / "out" / "la_003_0000_labels.tif", truth)
    labels = {"background": 0, "cytoplasm": 1, "nucleus": 2, "ignore": 3}
    (tmp_path / "Task" / "dataset.json").write_text(json.dumps({"labels": labels}))
    argv = ["evaluate", "--pred", str(tmp_path / "out"), "--gt",
            str(tmp_path / "Task" / "labelsTs"), "--json"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "evaluate: id 3 left out, as dataset.json's 'ignore'" in captured.err
    pooled = json.loads(captured.out)["pooled"]
    assert pooled["config"]["ignore_labels"] == [3]
    assert [row["id"] for row in pooled["classes"]] == [0, 1, 2]  # no row of "ignore"
    assert pooled["mean_iou"] == pytest.approx(1.0)


def test_an_ome_zarr_time_lapse_is_scored_frame_by_frame(files, tmp_path, capsys):
    """An OME-Zarr ground truth whose axes say (t, y, x): per-frame scores and surfaces
    in each frame, as for a TIFF naming T (it was scored as a volume)."""
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_image

    _, _, pred, gt = files
    write_image(gt.astype(np.uint8), zarr.open_group(str(tmp_path / "gt.ome.zarr"), mode="w",
                zarr_format=2), axes="tyx", fmt=FormatV04())  # fmt: skip
    np.save(tmp_path / "pred.npy", pred.astype(np.uint8))
    out = run_json(capsys, "--pred", str(tmp_path / "pred.npy"), "--gt",
                   str(tmp_path / "gt.ome.zarr"), "--surface")  # fmt: skip
    assert out["config"]["slice_axis"] == 0
    assert out["surface"]["series"] == 4
