import itertools
import time

import numpy as np
import pytest
import torch

from napari_seg._generators import Returning
from napari_seg.arrays.normalize import compute_stats
from napari_seg.arrays.runtime import resolve_precision
from napari_seg.inference import (
    PredictConfig,
    PredictProgress,
    PredictStarted,
    PredictWarning,
    SettingsAdjusted,
    iter_predict,
    predict,
    predictor,
    resolve_layout,
)
from napari_seg.inference.predictor import PREFETCH
from napari_seg.models import ModelSpec, create_model
from napari_seg.sample_data import cells_2d

FP32 = {"precision": "fp32"}


def _model(in_channels=1, num_classes=3, depth=3, width=8, seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec(
        "unet",
        encoder="classic",
        in_channels=in_channels,
        num_classes=num_classes,
        options={"depth": depth, "base_width": width},
    )
    return create_model(spec).eval()


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.fixture(scope="module")
def image():
    return cells_2d((200, 333), seed=3)[0]


def _drain(gen):
    """All events of a prediction generator, and its result."""
    run = Returning(gen)
    events = list(run)
    return events, run.value


def _whole(model, image):
    """Probabilities of the whole image in one forward pass (the oracle)."""
    layout = resolve_layout(image.shape, in_channels=model.spec.in_channels)
    stats = compute_stats(image, layout, model.spec.normalization)
    x = torch.from_numpy(stats.apply(layout.read(image, (), slice(None), slice(None))))
    with torch.no_grad():
        return torch.softmax(model(x[None]), 1)[0].numpy()


@pytest.mark.parametrize("blending", ["gaussian", "cosine"])
def test_tiled_prediction_agrees_with_whole_image(model, image, blending):
    whole = _whole(model, image)
    result = predict(
        model,
        image,
        tile=96,
        overlap=64,
        batch_size=3,
        blending=blending,
        probabilities=True,
        **FP32,
    )
    assert result.labels.shape == image.shape
    assert result.labels.dtype == np.uint8
    agreement = (result.labels == whole.argmax(0)).mean()
    assert agreement >= 0.999
    probs = result.probabilities.astype(np.float32)
    assert result.probabilities.dtype == np.float16
    assert probs.shape == (3, *image.shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=3e-3)
    assert np.median(np.abs(probs - whole)) < 1e-2


def test_single_tile_equals_whole_image(model, image):
    result = predict(model, image, tile=512, **FP32)
    np.testing.assert_array_equal(result.labels, _whole(model, image).argmax(0))


@pytest.mark.parametrize("dims", [2, 3])
def test_test_time_mirroring_averages_the_flipped_predictions(dims):
    """With ``tta`` each tile also runs flipped along every combination of its axes
    (4 in 2D, 8 in 3D): on an image that is one tile, the probabilities are the mean
    of plain predictions of the flipped images, flipped back."""
    from napari_seg.inference.predictor import mirror_dims

    torch.manual_seed(0)
    options = {"depth": 2, "base_width": 4}
    model = create_model(ModelSpec("unet", 1, 3, spatial_dims=dims, options=options)).eval()
    head = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))][-1]
    with torch.no_grad():
        head.weight.mul_(30)  # logits far apart: the flips' predictions differ clearly
    side = 64 if dims == 2 else 32
    image = (
        cells_2d((side, side), seed=5)[0]
        if dims == 2
        else np.random.default_rng(0).random((side,) * 3)
    )
    image = image.astype(np.float32)
    run = {"tile": side, "probabilities": True, **FP32}
    events, result = _drain(iter_predict(model, image, tta=True, **run))
    flips = [tuple(a - 2 for a in f) for f in mirror_dims(dims)]
    assert len(flips) == events[0].mirrors == 2**dims
    expected = np.mean(
        [
            np.flip(
                predict(model, np.flip(image, f), **run).probabilities.astype(np.float32),
                [1 + a for a in f],
            )
            for f in flips
        ],
        axis=0,
    )
    np.testing.assert_allclose(result.probabilities.astype(np.float32), expected, atol=1e-3)
    plain = predict(model, image, **run).probabilities.astype(np.float32)
    assert np.abs(plain - expected).max() > 0.05  # the network is not symmetric itself


def test_events_describe_the_job(model, image):
    gen = iter_predict(model, image, tile=96, overlap=32, batch_size=2, **FP32)
    events, result = _drain(gen)
    started = events[0]
    assert isinstance(started, PredictStarted)
    assert (started.tile, started.overlap, started.batch_size) == (96, 32, 2)
    assert started.device == "cpu"
    assert "cpu" in started.device_description
    progress = [e for e in events if isinstance(e, PredictProgress)]
    assert len(progress) == -(-started.tiles_total // 2)
    assert progress[-1].tiles_done == started.tiles_total
    assert progress[-1].eta_s == 0
    assert all(a.tiles_done < b.tiles_done for a, b in itertools.pairwise(progress))
    assert result.seconds > 0
    assert result.precision == "fp32"


def test_model_is_left_in_eval_and_contiguous(image):
    model = _model()
    model.train()
    predict(model, image, tile=128, **FP32)
    assert not model.training
    assert all(p.is_contiguous() for p in model.parameters())


def test_rgb_rgba_and_channel_first_inputs_agree():
    model = _model(in_channels=3)
    rng = np.random.default_rng(0)
    rgb = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((80, 96, 1), 255, np.uint8)], axis=-1)
    a = predict(model, rgb, tile=64, **FP32).labels
    b = predict(model, rgba, tile=64, **FP32).labels
    c = predict(model, np.moveaxis(rgb, -1, 0).copy(), tile=64, **FP32).labels
    assert a.shape == (80, 96)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_a_grey_image_stored_channel_last_is_one_plane(model, image):
    """``(H, W, 1)``, as Keras and OpenCV hold a grey image, gives the plane's labels."""
    plane = predict(model, image, tile=96, **FP32).labels
    last = predict(model, image[..., None], tile=96, **FP32).labels
    assert last.shape == image.shape
    np.testing.assert_array_equal(last, plane)


def test_stack_is_segmented_slice_by_slice(model):
    rng = np.random.default_rng(1)
    stack = (rng.random((4, 70, 90)) * 1000).astype(np.uint16)
    stack_result = predict(model, stack, axis=0, tile=64, batch_size=5, **FP32).labels
    assert stack_result.shape == stack.shape
    # Normalisation is computed on the whole stack, so compare with a model
    # that normalises nothing and inputs scaled the same way.
    plain = _model()
    plain.spec = plain.spec.with_(normalization=plain.spec.normalization.__class__("none"))
    scaled = stack.astype(np.float32) / 1000
    together = predict(plain, scaled, axis=0, tile=64, batch_size=5, **FP32).labels
    for z in range(4):
        alone = predict(plain, scaled[z], tile=64, **FP32).labels
        np.testing.assert_array_equal(together[z], alone)


def test_time_series_of_stacks_keeps_every_axis(model):
    data = np.random.default_rng(2).random((2, 3, 40, 48)).astype(np.float32)
    result = predict(model, data, axis=(0, 1), tile=32, **FP32)
    assert result.labels.shape == data.shape


def test_more_than_255_classes_gives_uint16():
    model = _model(num_classes=300, depth=2, width=4)
    result = predict(model, np.random.default_rng(0).random((40, 40)), **FP32)
    assert result.labels.dtype == np.uint16
    assert result.labels.max() < 300


def test_writes_into_a_zarr_store(model, image, tmp_path):
    zarr = pytest.importorskip("zarr")
    out = zarr.open(
        str(tmp_path / "labels.zarr"), mode="w", shape=image.shape, chunks=(64, 64), dtype="uint8"
    )
    result = predict(model, image, out=out, tile=96, **FP32)
    assert result.labels is out
    reopened = zarr.open(str(tmp_path / "labels.zarr"), mode="r")
    np.testing.assert_array_equal(reopened[:], predict(model, image, tile=96, **FP32).labels)


def test_outputs_that_cannot_take_the_results_are_refused_first(model, image, tmp_path):
    """A read-only ``out`` failed after the first band was computed ("assignment
    destination is read-only"); a list was said to have shape ()."""
    import zarr

    frozen = np.zeros(image.shape, np.uint8)
    frozen.flags.writeable = False
    zarr.open(str(tmp_path / "l.zarr"), mode="w", shape=image.shape, dtype="uint8")
    opened = zarr.open(str(tmp_path / "l.zarr"), mode="r")
    for out in (frozen, opened):
        with pytest.raises(ValueError, match="out is read-only"):
            predict(model, image, out=out, **FP32)
    with pytest.raises(TypeError, match=r"out must be an array that takes writes .*, got list"):
        predict(model, image, out=np.zeros(image.shape, np.uint8).tolist(), **FP32)
    probabilities = np.zeros((model.spec.num_classes, *image.shape), np.float32)
    probabilities.flags.writeable = False
    with pytest.raises(ValueError, match="probabilities_out is read-only"):
        predict(model, image, probabilities_out=probabilities, **FP32)


def test_dask_input_is_read_tile_by_tile(model, counting_array):
    da = pytest.importorskip("dask.array")
    from dask.callbacks import Callback

    data = cells_2d((1024, 768), seed=5)[0]
    source = counting_array(data)
    lazy = da.from_array(source, chunks=(64, 64), asarray=False)
    chunks_per_compute: list[int] = []

    class Count(Callback):
        def _start(self, dsk):
            self.before = len(source.reads)

        def _finish(self, dsk, state, errored):
            chunks_per_compute.append(len(source.reads) - self.before)

    with Count():
        result = predict(model, lazy, tile=128, overlap=32, **FP32)
    n_chunks = lazy.npartitions
    assert chunks_per_compute, "the dask array was never computed"
    # Each compute reads the chunks under one tile (or one 256-pixel
    # normalisation sample block), never the whole array.
    assert max(chunks_per_compute) <= (256 // 64 + 1) ** 2 < n_chunks / 4
    assert max(source.reads) <= 64 * 64
    assert sum(source.reads) < 4 * data.size
    np.testing.assert_array_equal(
        result.labels, predict(model, data, tile=128, overlap=32, **FP32).labels
    )


def test_closing_the_generator_cancels_within_a_batch(image, counting_array):
    model = _model()
    source = counting_array(image)
    gen = iter_predict(model, source, tile=64, overlap=16, batch_size=1, **FP32)
    event = next(gen)
    while not isinstance(event, PredictProgress):
        event = next(gen)
    gen.close()
    assert event.tiles_done == 1
    assert event.tiles_total > 10
    # One read for the normalisation statistics, then at most the batch done and the
    # PREFETCH batches queued behind it (one may have been loading while we closed)...
    reads = len(source.reads)
    assert reads - 1 <= 1 + PREFETCH
    # ...and nothing is read once close() has returned.
    time.sleep(0.3)
    assert len(source.reads) == reads
    with pytest.raises(StopIteration):
        next(gen)
    assert all(p.is_contiguous() for p in model.parameters())


def test_out_of_memory_halves_batch_then_tile(image, monkeypatch, caplog):
    """Each back-off is an event (the command line and the Segment dock show it), not
    also a log line: the command line, which logs warnings, printed each twice."""
    model = _model()
    forward = model.forward

    def limited(x):
        if x.shape[0] > 1 or x.shape[-1] > 64:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x)

    monkeypatch.setattr(model, "forward", limited)
    released = []  # each back-off frees memory, collecting the failed batch's cycles
    monkeypatch.setattr(predictor, "release_memory", lambda d, **kw: released.append(kw))
    gen = iter_predict(model, image, tile=128, overlap=32, batch_size=4, **FP32)
    with caplog.at_level("WARNING"):
        events, result = _drain(gen)
    assert not [r for r in caplog.records if "out of memory" in r.getMessage()]
    adjusted = [e for e in events if isinstance(e, SettingsAdjusted)]
    assert [(e.batch_size, e.tile) for e in adjusted] == [(2, 128), (1, 128), (1, 64)]
    assert released == [{"collect": True}] * 3 + [{}]  # the end of the run: no collection
    assert all("out of memory" in e.reason for e in adjusted)
    assert (result.tile, result.batch_size) == (64, 1)
    monkeypatch.undo()
    expected = predict(model, image, tile=64, overlap=32, batch_size=1, **FP32).labels
    np.testing.assert_array_equal(result.labels, expected)


def test_other_errors_are_not_taken_for_out_of_memory(image, monkeypatch):
    model = _model()

    def broken(x):
        raise RuntimeError("something else")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(RuntimeError, match="something else"):
        predict(model, image, **FP32)


def test_partial_nan_gives_a_warning_event(model, caplog):
    """Once, as an event: the statistics also logged it, and the command line (which
    logs warnings to stderr) printed it twice."""
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    image[:8] = np.nan
    with caplog.at_level("WARNING"):
        events = list(iter_predict(model, image, **FP32))
    warnings = [e for e in events if isinstance(e, PredictWarning)]
    assert len(warnings) == 1
    assert "12% of the examined pixels are NaN" in warnings[0].message
    assert not [r for r in caplog.records if "NaN" in r.getMessage()]


@pytest.mark.parametrize("dims", [2, 3])
def test_training_on_nan_pixels_says_so(dims, caplog):
    """Training said it only in a log line (napari's window never showed it); it is now
    a warning of the run, naming the pair, as prediction gives it."""
    from napari_seg.training import iter_train
    from napari_seg.training.events import TrainWarning

    shape = (64, 64) if dims == 2 else (8, 32, 32)
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float32)
    image[:2] = np.nan  # 2 of 64 rows, 2 of 8 slices
    labels = np.zeros(shape, np.uint8)
    labels[..., 4:12, 4:12], labels[..., 20:28, 20:28] = 1, 2
    with caplog.at_level("WARNING"):
        events = list(iter_train((image, labels), dims=dims, architecture="pixel-classifier",
                                 device="cpu", names=["cells.tif"]))  # fmt: skip
    notes = [e.message for e in events if isinstance(e, TrainWarning) and "NaN" in e.message]
    fraction = "3.1%" if dims == 2 else "25%"
    assert notes == [f"cells.tif: {fraction} of the examined pixels are NaN or infinite; "
                     "they are treated as background intensity"]  # fmt: skip
    assert not [r for r in caplog.records if "NaN" in r.getMessage()]


@pytest.mark.parametrize(
    ("image", "kwargs", "error", "message"),
    [
        (np.zeros((64, 64, 2), np.float32), {}, ValueError, "expects 1 input channel"),
        (np.zeros((0, 64), np.float32), {}, ValueError, "empty"),
        (np.zeros((1, 1), np.float32), {}, ValueError, "too small"),
        (np.full((32, 32), np.nan, np.float32), {}, ValueError, "no finite value"),
        (np.zeros((32, 32), np.complex64), {}, TypeError, "numeric dtype"),
        (np.array([["a"] * 32] * 32), {}, TypeError, "numeric dtype"),
        (np.zeros((4, 32, 32), np.float32), {}, ValueError, "choose the axis"),
        ([[1, 2], [3]], {}, TypeError, "image must be an array; nested lists must all have"),
        ("image.tif", {}, TypeError, r"image must be an array \(numpy, dask or zarr\), got str"),
        (np.zeros((32, 32)), {"tile": 8}, ValueError, "tile must be >= 32"),
        (np.zeros((32, 32)), {"tile": 64, "overlap": 64}, ValueError, "overlap must be smaller"),
        # MONAI's overlap is a fraction of the window; ours is in pixels: said so, as the CLI does
        (np.zeros((32, 32)), {"overlap": 0.25}, TypeError, r"whole number of pixels .* MONAI's"),
        (np.zeros((32, 32)), {"precision": "int8"}, ValueError, "precision must be one of"),
        (np.zeros((32, 32)), {"precision": "fp16"}, ValueError, "fp16 is not supported on the CPU"),
        (np.zeros((32, 32)), {"device": "cuda:7"}, ValueError, "CUDA"),
        (np.zeros((32, 32)), {"out": np.zeros((31, 32), np.uint8)}, ValueError, "out must have"),
        (np.zeros((32, 32)), {"out": np.zeros((32, 32), np.float32)}, ValueError, "integer"),
        (np.zeros((32, 32)), {"tiles": 3}, TypeError, "tiles"),
    ],
)
def test_bad_inputs_fail_at_the_call_with_a_clear_message(model, image, kwargs, error, message):
    if "cuda" in str(kwargs.get("device", "")) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(error, match=message):
        iter_predict(model, image, **kwargs)


def test_an_overlap_of_the_chosen_tile_is_refused_where_tiles_would_step(model):
    """With the tile left to napari-seg (512 on the CPU), ``overlap=600`` was clipped
    to 511 silently: a 1500 x 1500 image became a million tiles of one-pixel steps."""
    with pytest.raises(ValueError, match=r"overlap=600 and the 512-pixel tile chosen for cpu"):
        iter_predict(model, np.zeros((1500, 1500), np.float32), overlap=600)
    with pytest.raises(ValueError, match=r"overlap=512 and the 512-pixel tile"):
        iter_predict(model, np.zeros((64, 1500), np.float32), overlap=512)
    # where the image fits in one tile the overlap changes nothing: a folder of
    # images of several sizes runs with one setting
    small = predict(model, np.zeros((100, 120), np.float32), overlap=600)
    assert small.labels.shape == (100, 120)
    assert predict(model, np.zeros((40, 600), np.float32), overlap=511).overlap == 511


def test_model_must_be_a_segmentation_model(model, image):
    with pytest.raises(TypeError, match="SegmentationModel"):
        predict(torch.nn.Conv2d(1, 2, 3), image)
    # image first, as scikit-image's functions take it: the order is named
    with pytest.raises(
        TypeError, match=r"got ndarray \(the model comes first: predict\(model, image\)\)"
    ):
        predict(image, model)


def test_auto_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    from napari_seg.arrays.runtime import cpu_has_native_bf16

    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"


def test_auto_precision_on_cuda_is_bf16_only_where_the_card_computes_it(monkeypatch):
    """A T4 or V100 (compute capability 7.x) emulates bf16, slower than its fp16
    tensor cores: "auto" picks fp16 there, and asks the job's own card, not the
    current one. An explicit bf16 is allowed while it works at all."""
    from napari_seg.arrays import runtime

    class Props:
        def __init__(self, major):
            self.major = major

    majors = {0: 8, 1: 7}
    asked = []

    def properties(device):
        asked.append(device.index)
        return Props(majors[device.index])

    class Current:
        def __init__(self, device):
            self.index = device.index

        def __enter__(self):
            asked.append(("current", self.index))

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.cuda, "device", Current)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: asked[-1][1] == 0)
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 1)) == "fp16"
    assert resolve_precision("auto", torch.device("cuda", 1), purpose="training") == "fp16"
    assert asked == [0, 1, 1]
    assert resolve_precision("bf16", torch.device("cuda", 0)) == "bf16"
    with pytest.raises(ValueError, match="cuda:1 does not support bf16"):
        resolve_precision("bf16", torch.device("cuda", 1))
    assert runtime.cuda_has_native_bf16(torch.device("cuda", 0))


def test_config_round_trips_through_json():
    config = PredictConfig(tile=256, overlap=32, axis=(0, 1), probabilities=True)
    assert PredictConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown prediction setting"):
        PredictConfig.from_dict({"tiles": 3})
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        PredictConfig(batch_size=1.5).validate()


@pytest.mark.gpu
def test_cuda_prediction_matches_cpu(image):
    model = _model()
    cpu = predict(model, image, tile=128, device="cpu", **FP32).labels
    gpu = predict(model, image, tile=128, device="cuda", precision="bf16", batch_size=4)
    assert gpu.device.startswith("cuda")
    assert gpu.precision == "bf16"
    assert (gpu.labels == cpu).mean() >= 0.99
    assert torch.cuda.memory_allocated() < 200 * 2**20  # released apart from the model


@pytest.mark.gpu
@pytest.mark.parametrize("search", [False, True])
def test_cuda_prediction_leaves_cudnn_search_as_set(image, search, monkeypatch):
    """The search costs 0.7 s per new tile shape on an H200 and gained nothing
    measurable in 2D: predict leaves the user's setting, on or off, all along."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", search)
    seen = []
    for _event in iter_predict(_model(), image, PredictConfig(tile=128, device="cuda")):
        seen.append(torch.backends.cudnn.benchmark)
    assert set(seen) == {search}
    assert torch.backends.cudnn.benchmark is search


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_the_input_image_is_never_modified(model, dtype):
    image = (np.random.default_rng(0).random((2, 70, 90)) * 1000).astype(dtype)
    before = image.copy()
    predict(model, image, axis=0)
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": 10**6}, "tile must be at most 16384"),
        ({"batch_size": 10**6}, "batch_size must be at most 1024"),
        ({"tile": 8192, "batch_size": 8}, r"batch_size x tile\^2 must be at most"),
        ({"axis": (0,) * 100}, "axis lists at most 63 axes"),
    ],
)
def test_every_prediction_setting_has_a_bound(kwargs, message):
    from napari_seg.inference import PredictConfig

    with pytest.raises(ValueError, match=message):
        PredictConfig(**kwargs).validate()
