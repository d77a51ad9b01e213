"""The pixel classifier in 3D: the features of a region equal the whole input's
there, a tile is classified slab by slab, the classifier is fitted from a few
annotated slices of a volume (windows cut to the painted voxels, held-out slices
scored with their context), and it predicts with tiles that leave room for the
filters' context."""

import threading

import numpy as np
import pytest
import torch

from napari_seg.inference import iter_predict, predict
from napari_seg.models import ModelSpec, Normalization, _pixel, create_model, load_model, save_model
from napari_seg.models._filters import FilterBank, sigmas_for
from napari_seg.sample_data import cells_2d, cells_3d
from napari_seg.training import train
from napari_seg.training.data import IGNORE_INDEX, TrainingData
from napari_seg.training.losses import SegmentationLoss
from napari_seg.training.pixel import fit_pixel_classifier, iter_fit_volume
from napari_seg.training.volume import VolumeData

EVERY = 6
OPTIONS = {"max_sigma": 4, "trees": 8}


def _few_slices(shape=(32, 64, 64), seed=2):
    image, truth = cells_3d(shape, seed=seed)
    sparse = np.zeros(truth.shape, np.uint8)
    sparse[::EVERY] = truth[::EVERY] + 1  # 1 = background, 2 and 3 the cell classes
    return image, truth, sparse


def _data(image, sparse, **kwargs):
    args = dict(in_channels=1, normalization=Normalization(), label0="unlabelled",
                patch=(16, 128, 128), validation_fraction=0.34, seed=0)  # fmt: skip
    return VolumeData([(image, sparse)], **{**args, **kwargs})


@pytest.fixture(scope="module")
def fitted():
    image, truth, sparse = _few_slices()
    result = train((image, sparse), dims=3, architecture="pixel-classifier", label0="unlabelled",
                   device="cpu", options=OPTIONS, validation_fraction=0.34)  # fmt: skip
    return image, truth, sparse, result


@pytest.mark.parametrize(
    ("dims", "shape", "inner", "spacing"),
    [
        (2, (1, 2, 150, 133), (slice(60, 61), slice(3, 120)), None),
        (3, (1, 1, 40, 70, 65), (slice(5, 30), slice(20, 50), slice(0, 10)), None),
        (3, (1, 1, 40, 70, 65), (slice(12, 13), slice(None), slice(30, 65)), None),
        # Thick slices: a shorter reach and less pooling along z than in-plane.
        (3, (1, 1, 20, 70, 65), (slice(7, 8), slice(None), slice(30, 65)), (3.0, 0.5, 0.5)),
        (3, (1, 1, 40, 70, 65), (slice(5, 30), slice(20, 50), slice(0, 10)), (1.0, 1.0, 2.5)),
    ],
)
def test_the_features_of_a_region_are_the_whole_inputs_features_there(dims, shape, inner, spacing):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    bank = FilterBank(shape[1], dims, sigmas_for(16), spacing)  # downsampled scales and full
    whole = bank(x)[(..., *inner)]
    part = bank(x, inner)
    assert part.shape == whole.shape
    torch.testing.assert_close(part, whole, atol=1e-5, rtol=1e-5)


def _smooth_volume(shape, seed=0):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.standard_normal(shape), 3.0, mode="wrap")
    return torch.from_numpy((noise / noise.std()).astype(np.float32))[None, None]


def test_3d_scales_are_physical_so_thick_slices_see_what_thin_ones_see():
    # A smooth isotropic volume, and every other slice of it (z spacing 2): at the
    # kept slices the thick stack's features (spacing given) equal the thin stack's,
    # up to sampling; filters in voxels would smooth and pool twice as far along z
    # and take z derivatives per slice instead of per voxel side.
    thin = _smooth_volume((64, 48, 48))
    thick = thin[:, :, ::2]
    sigmas = (1.0, 2.0, 4.0)  # full resolution, and pooled in-plane at 4 but not along z
    reference = FilterBank(1, 3, sigmas)(thin)[:, :, ::2]
    physical = FilterBank(1, 3, sigmas, spacing=(2.0, 1.0, 1.0))(thick)
    voxels = FilterBank(1, 3, sigmas)(thick)
    inside = (slice(None), slice(None), slice(6, 26), slice(8, 40), slice(8, 40))  # no edges

    def error(feats):  # per feature, relative to the reference's spread
        diff = (feats - reference)[inside].flatten(2).abs().mean(2)
        return diff / reference[inside].flatten(2).std(2)

    assert float(error(physical).max()) < 0.2  # sampling: z sigma of 1 is half a slice
    assert float(error(physical).mean()) < 0.06
    assert float(error(voxels).mean()) > 5 * float(error(physical).mean())  # 0.51 against 0.047


def test_the_spacing_of_the_spec_sets_the_filters_of_a_3d_classifier():
    def steps(dims, spacing):
        spec = ModelSpec("pixel-classifier", 1, 2, spatial_dims=dims, spacing=spacing)
        return create_model(spec).net.features.steps

    assert steps(3, (5.0, 0.5, 0.5)) == (10.0, 1.0, 1.0)
    assert steps(3, (2.0, 2.0, 2.0)) == (1.0, 1.0, 1.0)  # isotropic: as in voxels
    assert steps(3, None) == (1.0, 1.0, 1.0)
    assert steps(2, (1.0, 2.0)) == (1.0, 1.0)  # 2D filters stay in pixels
    x = torch.rand((1, 1, 20, 30, 30), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(FilterBank(1, 3, (1.0, 4.0), (2.0, 2.0, 2.0))(x),
                               FilterBank(1, 3, (1.0, 4.0))(x))  # fmt: skip


def test_a_tile_is_classified_slab_by_slab_as_it_is_whole(fitted, monkeypatch):
    image, _, _, result = fitted
    net = result.model.net
    x = torch.from_numpy(image[None, None].astype(np.float32) / image.max())
    with torch.no_grad():
        whole = net(x)
        monkeypatch.setattr(_pixel, "FEATURE_BYTES", 1)  # one slice per slab
        sliced = net(x)
    assert sliced.shape == whole.shape
    same = sliced.argmax(1) == whole.argmax(1)
    assert same.float().mean() > 0.999  # features equal to ~1e-7: a rare split may flip
    torch.testing.assert_close(sliced.argmax(1)[same], whole.argmax(1)[same])


def test_fitted_from_a_few_slices_it_segments_the_volume(fitted, tmp_path):
    image, truth, _, result = fitted
    assert result.stopped == "fitted"
    assert result.model.spec.spatial_dims == 3
    # A few hundred held-out voxels of the smallest class: the figure moves with the
    # forest's draws (0.92 with scikit-learn 1.9, 0.68 with 1.7; the refit forest's
    # IoU below is the same with both).
    assert 0.6 < result.history[-1]["val_agreement"] <= 1.0
    labels = predict(result.model, image).labels
    assert labels.shape == image.shape
    for c in np.unique(truth):  # every class, between the painted slices too
        between = np.ones(truth.shape[0], bool)
        between[::EVERY] = False
        p, t = labels[between] == c + 1, truth[between] == c
        assert (p & t).sum() / (p | t).sum() > 0.6, c
    path = tmp_path / "pixel3d.safetensors"
    save_model(result.model, path)
    np.testing.assert_array_equal(predict(load_model(path), image).labels, labels)


def test_windows_are_the_boxes_of_the_painted_voxels():
    """One window per block, cut to the box of every painted voxel (training and
    held-out), with the training annotation as its target and the held-out one
    beside it; blocks without painted voxels are visited too (for progress)."""
    image, _, sparse = _few_slices()
    data = _data(image, sparse)
    held = sorted(slab.start for slab in data.regions)
    assert held
    assert all(slab.axis == 0 and slab.stop == slab.start + 1 for slab in data.regions)
    painted = list(range(0, image.shape[0], EVERY))
    training = [z for z in painted if z not in held]
    pairs = list(data.window_pairs(128, 5))
    assert len(pairs) == 1  # one block covers the volume
    ((done, total, window, held_target),) = pairs
    assert (done, total) == (1, 1)
    z0 = window.key[1][0] + window.inner[0].start
    assert (z0, z0 + window.target.shape[0]) == (min(painted), max(painted) + 1)
    assert window.image.shape[1:] == tuple(stop - start for start, stop in window.key[1:])
    for slices, target in ((training, window.target), (held, held_target)):
        whole = np.full(sparse.shape, IGNORE_INDEX, np.int64)
        whole[z0 : z0 + target.shape[0], : target.shape[1], : target.shape[2]] = target
        scored = np.zeros(sparse.shape, bool)
        scored[slices] = sparse[slices] > 0
        np.testing.assert_array_equal(whole != IGNORE_INDEX, scored)
        np.testing.assert_array_equal(whole[scored], sparse[scored])
    small = list(data.window_pairs(16, 5))  # blocks of 16: several windows, the same voxels
    assert [(d, t) for d, t, _, _ in small] == [(d, 32) for d in range(1, 33)]
    windows = [w for _, _, w, _ in small if w is not None]
    assert len({w.key for w in windows}) == len(windows) > 1
    counted = sum(int((w.target != IGNORE_INDEX).sum()) for w in windows)
    assert counted == data.annotated_pixels
    # A margin per axis: the context read is that long along each.
    thin = [w for _, _, w, _ in data.window_pairs(16, (1, 3, 2)) if w is not None]
    inner = thin[len(thin) // 2]  # a window away from the volume's edges
    context = [
        (i.start, (stop - start) - i.stop)
        for i, (start, stop) in zip(inner.inner, inner.key[1:], strict=True)
    ]
    assert all(
        before <= m and after <= m for (before, after), m in zip(context, (1, 3, 2), strict=True)
    )
    assert max(context[1]) == 3


def test_the_context_is_shorter_along_thick_slices_and_enough():
    bank = FilterBank(1, 3, sigmas_for(16), spacing=(3.0, 1.0, 1.0))
    assert bank.margins == (37, 105, 105)
    assert bank.margin == 105
    x = torch.rand((1, 1, 140, 100, 100), generator=torch.Generator().manual_seed(0))
    box = (slice(64, 72), slice(40, 56), slice(40, 56))
    outer = [
        slice(max(0, b.start - m), min(n, b.stop + m))
        for b, m, n in zip(box, bank.margins, x.shape[2:], strict=True)
    ]
    assert outer[0] == slice(27, 109)  # 37 slices of context, not 105
    inner = tuple(
        slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer, strict=True)
    )
    part = bank(x[(..., *outer)])[(..., *inner)]
    torch.testing.assert_close(part, bank(x)[(..., *box)], atol=2e-3, rtol=0)  # 4e-4 measured


@pytest.mark.parametrize("per_class", [None, 50])
def test_held_out_slices_are_scored_with_their_context(monkeypatch, per_class):
    """The single pass's validation against the first forest's prediction of the whole
    volume at the held-out painted voxels (one tile: the features see the whole
    volume); with few held-out samples per block, their weights keep it close."""
    import copy

    from napari_seg._generators import drain
    from napari_seg.training import pixel

    image, _, sparse = _few_slices()
    data = _data(image, sparse)
    held = sorted(slab.start for slab in data.regions)
    model = create_model(ModelSpec("pixel-classifier", in_channels=1, num_classes=4,
                                   spatial_dims=3, options=OPTIONS))  # fmt: skip
    first = []
    fit_forest = pixel.fit_forest

    def recording(net, samples, **kwargs):
        fit = fit_forest(net, samples, **kwargs)
        first.append(copy.deepcopy(model)) if not first else None
        return fit

    monkeypatch.setattr(pixel, "fit_forest", recording)
    if per_class is not None:
        monkeypatch.setattr(pixel, "HELD_OUT_PER_CLASS", per_class)
    loss = SegmentationLoss("ce", num_classes=4)
    _, val = drain(pixel.iter_fit_volume(model, data, loss))
    labels = predict(first[0], image).labels
    agreement = [np.mean(labels[held][sparse[held] == c] == c) for c in (1, 2, 3)]
    assert val.metric == "agreement"
    assert val.score == pytest.approx(np.mean(agreement), abs=2e-3 if per_class is None else 0.03)
    assert np.isfinite(val.loss)
    assert len(first) == 1  # ...and the refit made a second forest
    assert not torch.equal(first[0].net.split_threshold, model.net.split_threshold)


def test_a_3d_classifier_predicts_with_tiles_that_leave_room_for_its_context(fitted):
    """A 256^3 tile overlapped by the filters' context, not a 96^3 one overlapped
    by nearly all of it (which left the default classifier a stride of one voxel)."""
    model = fitted[3].model
    volume = np.random.default_rng(0).random((40, 300, 300), dtype=np.float32)
    started = next(iter_predict(model, volume, device="cpu"))
    margin = model.net.features.margin
    assert (started.tile, started.overlap) == (256, margin)
    assert started.tiles_total == 4
    default = create_model(ModelSpec("pixel-classifier", in_channels=1, num_classes=2,
                                     spatial_dims=3))  # fmt: skip
    started = next(iter_predict(default, volume, device="cpu"))
    assert started.overlap == default.net.features.margin < started.tile // 2
    assert started.tiles_total == 4


def test_a_classifier_is_fitted_on_data_of_its_own_dimensionality():
    image, truth = cells_2d((64, 64), seed=0)
    planes = TrainingData([(image, truth + 1)], in_channels=1, normalization=Normalization(),
                          label0="unlabelled", patch_size=64)  # fmt: skip
    model3d = create_model(ModelSpec("pixel-classifier", in_channels=1, num_classes=3,
                                     spatial_dims=3, options=OPTIONS))  # fmt: skip
    with pytest.raises(ValueError, match="3D pixel classifier is fitted on volumes, not on planes"):
        fit_pixel_classifier(model3d, planes)
    image, _, sparse = _few_slices()
    model2d = create_model(ModelSpec("pixel-classifier", in_channels=1, num_classes=4,
                                     options=OPTIONS))  # fmt: skip
    with pytest.raises(ValueError, match="2D pixel classifier is fitted on planes, not on volumes"):
        fit_pixel_classifier(model2d, _data(image, sparse))
    with pytest.raises(ValueError, match="fits a 3D pixel classifier"):
        next(iter_fit_volume(model2d, _data(image, sparse), SegmentationLoss("ce", num_classes=4)))


def test_a_stopped_fit_reads_no_window_after_the_stop(monkeypatch):
    """A large volume is read in many windows: once stopped, the forest is fitted on
    those read so far, without validation, and the run says so."""
    from napari_seg._generators import Returning
    from napari_seg.training import iter_train, pixel
    from napari_seg.training.events import FitProgress, TrainWarning

    image, _, sparse = _few_slices()
    monkeypatch.setattr(pixel, "WINDOW_3D", 16)  # 2 x 4 x 4 windows
    read = []
    original = pixel.window_features
    monkeypatch.setattr(pixel, "window_features", lambda *a: read.append(1) or original(*a))
    settings = dict(dims=3, architecture="pixel-classifier", label0="unlabelled", device="cpu",
                    options=OPTIONS)  # fmt: skip
    drained = list(iter_train((image, sparse), **settings))
    assert len(read) == 32  # each block's features once (every block holds painted voxels)
    progress = [e for e in drained if isinstance(e, FitProgress)]
    assert [(e.blocks_done, e.blocks_total) for e in progress] == [(d, 32) for d in range(1, 33)]
    read.clear()
    stop = threading.Event()
    stop.set()
    run = Returning(iter_train((image, sparse), stop=stop, **settings))
    events = list(run)
    assert len(read) == 1
    assert any(isinstance(e, TrainWarning) and e.message.startswith("stopped") for e in events)
    assert not any(isinstance(e, TrainWarning) for e in drained)
    assert bool(run.value.model.net.fitted)
    assert run.value.history[-1]["val_agreement"] is None  # not validated


def test_dense_labels_hold_out_slabs_scored_by_iou():
    """Dense labels (every voxel a class): slabs 16 slices thick are held out along
    the first axis and scored by their IoU, with the features' context."""
    image, labels = cells_3d((96, 48, 48), seed=3, n_cells=30)
    result = train((image, labels), dims=3, architecture="pixel-classifier",
                   label0="background", device="cpu", options=OPTIONS)  # fmt: skip
    last = result.history[-1]
    assert 0.7 < last["val_iou"] <= 1.0
    assert set(last["val_class_iou"]) == {"0", "1", "2"}
