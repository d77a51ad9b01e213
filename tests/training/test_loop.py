import json
import threading

import numpy as np
import pytest
import torch

from napari_seg._generators import Returning
from napari_seg.inference import predict
from napari_seg.metrics import confusion_matrix, semantic_scores
from napari_seg.models import ModelSpec, create_model, load_model, save_model
from napari_seg.training import (
    EpochEnd,
    ModelSaved,
    StepProgress,
    TrainingConfig,
    TrainStarted,
    iter_train,
    train,
)


def _foreground_iou(pred, truth, label=1):
    scores = semantic_scores(confusion_matrix(pred, truth, labels=[label - 1, label]))
    return float(scores.iou[1])


def test_a_small_unet_learns_synthetic_blobs(make_blobs, tiny):
    config = tiny.with_(epochs=8, steps_per_epoch=10, batch_size=4, learning_rate=3e-3)
    result = train(make_blobs((160, 160), seed=0), config)
    image, truth = make_blobs((160, 160), seed=7)  # an image it never saw
    iou = _foreground_iou(predict(result.model, image).labels, truth)
    assert iou >= 0.9, f"foreground IoU {iou:.3f} after {result.seconds:.1f} s"
    assert result.stopped == "budget"
    assert result.metrics["best_val_iou"] > 0.8
    assert [h["epoch"] for h in result.history] == list(range(1, 9))


def test_pairs_are_read_as_numpy_and_torch_users_write_them(make_blobs, tiny):
    """``train([image, labels])`` (a list, as one writes a pair in a hurry) failed with
    "pair 0 must be an (image, labels) pair, got ndarray"; three arrays in a row said
    the same of the image, not that pairs are grouped."""
    image, labels = make_blobs((96, 96), seed=0)
    config = tiny.with_(epochs=1, steps_per_epoch=1)
    as_tuple = train((image, labels), config)
    as_list = train([image, labels], config)
    timeless = [{k: v for k, v in h.items() if k != "elapsed_s"} for h in as_tuple.history]
    assert [{k: v for k, v in h.items() if k != "elapsed_s"} for h in as_list.history] == timeless
    with pytest.raises(ValueError, match=r"got 3 arrays in a row; group them in pairs"):
        train((image, labels, labels), config)
    with pytest.raises(ValueError, match="a non-empty list of them, got generator"):
        train(((image, labels) for _ in range(1)), config)


def test_arguments_of_the_wrong_kind_are_named_before_training(
    make_blobs, tiny, tmp_path, monkeypatch
):
    """Each failed inside the run with Python's words: a model file's path as ``model``
    ("'str' object has no attribute 'to'"), ``stop=True`` (at the first step), names of
    the wrong count (zip's "argument 2 is shorter"), a folder as ``out`` ("PosixPath('.')
    has an empty name"), and a preview the model cannot predict (at the first preview,
    seconds into training)."""
    image, labels = make_blobs((96, 96), seed=0)
    config = tiny.with_(epochs=1, steps_per_epoch=1)
    with pytest.raises(TypeError, match=r"got str \(a model file: give it as from_model=path\)"):
        train((image, labels), config, model="m.safetensors")
    with pytest.raises(TypeError, match=r"stop must be a threading\.Event, got bool"):
        train((image, labels), config, stop=True)
    with pytest.raises(ValueError, match=r"names must hold one name per pair \(2\)"):
        train([(image, labels), (image, labels)], config, names=["only one"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        train((image, labels), config, out=".")
    events = []
    run = iter_train((image, labels), config, preview=np.zeros((4, 96, 96)))
    with pytest.raises(ValueError, match=r"preview \(shape \(4, 96, 96\)\): the model expects 1"):
        events.extend(run)
    assert not any(isinstance(e, StepProgress) for e in events)
    assert train((image, labels), config, names=[7]).model is not None  # any name, as text


def test_sparse_scribbles_train_the_painted_ids(make_blobs, tiny):
    image, truth = make_blobs((160, 160), seed=1)
    scribbles = np.zeros_like(truth)
    rng = np.random.default_rng(0)
    keep = rng.random(truth.shape) < 0.03  # 3% of the pixels painted
    scribbles[keep] = truth[keep] + 1  # id 1: background, id 2: blob; 0: not painted
    config = tiny.with_(label0="unlabelled", epochs=8, steps_per_epoch=10, learning_rate=3e-3)
    result = train((image, scribbles), config)
    assert result.model.spec.num_classes == 3
    assert result.model.spec.class_names[0] == "unlabelled"
    assert result.model.spec.untrained_classes == (0,)
    image2, truth2 = make_blobs((160, 160), seed=8)
    pred = predict(result.model, image2).labels
    assert set(np.unique(pred)) <= {1, 2}  # never the unpainted id 0
    assert _foreground_iou(pred, truth2 + 1, label=2) >= 0.8


def test_stop_lands_within_one_step(make_blobs, tiny):
    stop = threading.Event()
    run = Returning(iter_train(make_blobs(), tiny.with_(epochs=50), stop=stop))
    steps = 0
    for event in run:
        if isinstance(event, StepProgress):
            steps += 1
            stop.set()
    result = run.value
    assert steps == 1
    assert result.steps == 1
    assert result.stopped == "stopped"


def test_resume_from_file_reproduces_the_uninterrupted_run(make_blobs, tiny, tmp_path):
    pair = make_blobs(seed=3)
    config = tiny.with_(epochs=3, steps_per_epoch=4)
    whole = train(pair, config, out=tmp_path / "whole.safetensors")
    stop = threading.Event()
    events = iter_train(pair, config, out=tmp_path / "part.safetensors", stop=stop)
    for event in events:
        if isinstance(event, StepProgress) and event.epoch == 2 and event.step == 2:
            stop.set()
    resumed = train(
        pair, resume=tmp_path / "part-last.safetensors", out=tmp_path / "part.safetensors"
    )
    assert resumed.steps == whole.steps == 12
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    assert resumed.metrics["best_val_iou"] == whole.metrics["best_val_iou"]
    a = load_model(tmp_path / "whole-last.safetensors").state_dict()
    b = load_model(tmp_path / "part-last.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_files_events_and_summary(make_blobs, tiny, tmp_path):
    out = tmp_path / "model.safetensors"
    seen = [type(e) for e in iter_train(make_blobs(), tiny, out=out)]
    assert seen[0] is TrainStarted
    assert seen.count(EpochEnd) == 2
    assert seen.count(StepProgress) == 8
    assert ModelSaved in seen
    summary = json.loads((tmp_path / "model.training.json").read_text())
    assert TrainingConfig.from_dict(summary) == tiny
    assert summary["metrics"]["epochs"] == 2
    assert len(summary["history"]) == 2
    model = load_model(out)  # an ordinary model file: loads without the training state
    card = model.card["provenance"]["training"]
    assert card["config"]["loss"] == tiny.loss
    assert model.spec.normalization.method == "percentile"
    assert (tmp_path / "model-last.safetensors").is_file()
    # The files written while it ran say so; the summary says how the run ended.
    assert card["status"] == "checkpoint"
    assert card["metrics"]["epochs"] == card["metrics"]["best_epoch"]
    assert summary["status"] == "budget"


def test_fine_tuning_keeps_the_given_model_and_can_grow_classes(make_blobs, tiny, tmp_path):
    torch.manual_seed(0)
    base = create_model(ModelSpec("unet", in_channels=1, num_classes=2, options=tiny.options))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    image, labels = make_blobs(seed=4)
    labels = labels.copy()
    labels[:10, :10] = 2  # a new class
    with pytest.raises(ValueError, match="the model has 2 classes"):
        train((image, labels), tiny, model=base)
    result = train((image, labels), tiny.with_(grow_classes=True), model=base)
    assert result.model.spec.num_classes == 3
    assert result.model.spec.class_names[:2] == base.spec.class_names
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    path = save_model(base, tmp_path / "base.safetensors")
    tuned = train((image, labels), tiny.with_(from_model=str(path), grow_classes=True))
    assert tuned.model.spec.num_classes == 3


def test_the_wider_head_keeps_the_old_classes():
    from napari_seg.models.heads import with_classes

    torch.manual_seed(0)
    model = create_model(
        ModelSpec("unet", in_channels=1, num_classes=2, options={"depth": 2, "base_width": 4})
    )
    grown = with_classes(model, 4)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        old, new = model.eval()(x), grown.eval()(x)
    torch.testing.assert_close(new[:, :2], old)
    assert grown.spec.num_classes == 4


@pytest.mark.parametrize("arch", ["deeplabv3", "unet3+"])
def test_batch_size_one_trains_batchnorm_heads_and_deep_supervision(make_blobs, tiny, arch):
    options = {"deep_supervision": True} if arch == "unet3+" else {}
    config = tiny.with_(
        architecture=arch,
        encoder="resnet18" if arch == "deeplabv3" else None,
        options=options,
        batch_size=1,
        epochs=1,
        steps_per_epoch=2,
    )
    result = train(make_blobs(), config)
    assert result.steps == 2
    assert np.isfinite(result.losses).all()


def test_a_time_budget_ends_the_run(make_blobs, tiny):
    # No early stopping: on a fast machine enough epochs fit in 1.2 s to trigger it.
    result = train(make_blobs(), tiny.with_(epochs=None, minutes=0.02, patience=None))
    assert result.stopped == "budget"
    assert result.seconds >= 1.2
    assert result.seconds < 5


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        ("missing/model.safetensors", FileNotFoundError, "output folder does not exist"),
        ("afile/model.safetensors", FileNotFoundError, "output folder does not exist"),
        (".", IsADirectoryError, "is a folder"),
    ],
)
def test_unusable_outputs_fail_before_training(make_blobs, tiny, tmp_path, out, error, message):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(error, match=message):
        train(make_blobs(), tiny, out=tmp_path / out)
    assert (tmp_path / "afile").read_text() == "x"


def test_a_failing_run_leaves_an_existing_model_file_as_it_was(make_blobs, tiny, tmp_path):
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"previous model")
    image, _ = make_blobs()
    with pytest.raises(ValueError, match="no annotated pixel"):
        train(
            (image, np.zeros(image.shape, np.uint8)),
            tiny.with_(label0="unlabelled"),
            out=out,
            overwrite=True,
        )
    with pytest.raises(ValueError, match="does not match the image shape"):
        train((image, np.zeros((10, 10), np.uint8)), tiny, out=out, overwrite=True)
    frames, labels = np.stack([image] * 3), np.zeros((3, *image.shape), np.uint8)
    with pytest.raises(ValueError, match=r"labels have axis 0 too.* \(axis=0; --axis 0\)"):
        train((frames, labels), tiny.with_(channel_axis=0), out=out, overwrite=True)
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_resume_refuses_a_file_without_training_state(make_blobs, tiny, tmp_path):
    path = save_model(
        create_model(ModelSpec("unet", in_channels=1, num_classes=2)), tmp_path / "m.safetensors"
    )
    with pytest.raises(ValueError, match="no training"):
        train(make_blobs(), tiny, resume=path)


def test_early_stopping_after_patience_epochs_without_improvement(make_blobs, tiny, monkeypatch):
    from napari_seg.training import loop
    from napari_seg.training.validation import Validation

    scores = iter([0.5, 0.7, 0.69, 0.7, 0.65, 0.9])
    monkeypatch.setattr(loop, "validate", lambda *a: Validation(0.3, next(scores), {1: 0.1}))
    result = train(make_blobs(), tiny.with_(epochs=6, patience=3))
    assert result.stopped == "early stopping"
    assert result.epochs == 5  # best at epoch 2, then three epochs without a better IoU
    assert result.metrics["best_epoch"] == 2
    assert result.metrics["best_val_iou"] == 0.7


def test_closing_the_generator_cancels_and_keeps_finished_files(make_blobs, tiny, tmp_path):
    out = tmp_path / "model.safetensors"
    events = iter_train(make_blobs(), tiny.with_(epochs=5), out=out)
    for event in events:
        if isinstance(event, ModelSaved) and event.kind == "last":
            break
    events.close()
    assert load_model(out).spec.num_classes == 2  # the checkpoint written so far is whole
    assert not (tmp_path / "model.training.json").exists()  # no summary: the run did not end
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-last.safetensors",
        "model.safetensors",
    ]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("bg", "blob"), ("bg", "blob")),
        (("bg",), ("bg", "class 1")),  # the labels use id 1: named "class 1"
        (("bg", "blob", "debris", "halo"), ("bg", "blob", "debris", "halo")),  # 4 classes
    ],
)
def test_new_model_class_names_set_and_extend_the_classes(make_blobs, tiny, names, expected):
    config = tiny.with_(class_names=names, epochs=1, steps_per_epoch=1)
    result = train(make_blobs((64, 64), seed=0), config)
    assert result.model.spec.class_names == expected
    assert result.model.spec.num_classes == len(expected)


def test_a_new_2d_model_records_the_planes_spacing(make_blobs, tiny):
    config = tiny.with_(epochs=1, steps_per_epoch=1)
    image, labels = make_blobs((64, 64), seed=0)
    result = train((image, labels), config.with_(spacing=(0.5, 0.5)))
    assert result.model.spec.spacing == (0.5, 0.5)
    # A volume's three sizes: which two are the planes' is the user's to say.
    stack = (np.stack([image] * 3), np.stack([labels] * 3))
    with pytest.raises(ValueError, match="spacing has 3 sizes but a new 2D model records 2"):
        train(stack, config.with_(spacing=(4.0, 0.5, 0.5), axis=0))


def test_previews_come_during_an_epoch_and_at_the_end(make_blobs, tiny, monkeypatch):
    """Previews follow training time, not epochs: with the interval at 0 every step
    brings one, and the run's end brings the last (issue 15, point 6)."""
    from napari_seg.training import loop as loop_module
    from napari_seg.training.events import PreviewReady

    monkeypatch.setattr(loop_module, "PREVIEW_S", 0.0)
    monkeypatch.setattr(loop_module, "PREVIEW_SHARE", 1e9)  # no slowdown rule either
    image, labels = make_blobs((96, 96), seed=1)
    config = tiny.with_(epochs=1, steps_per_epoch=3)
    events = list(Returning(iter_train((image, labels), config, preview=image)))
    order = [type(e).__name__ for e in events if isinstance(e, (StepProgress, PreviewReady))]
    assert order[:2] == ["StepProgress", "PreviewReady"]  # within the first epoch
    previews = [e for e in events if isinstance(e, PreviewReady)]
    assert len(previews) == 3 + 1  # each of the 3 steps, and the end
    assert all(p.epoch == 1 for p in previews)
    assert previews[-1].labels.shape == image.shape
