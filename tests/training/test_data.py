import numpy as np
import pytest

from napari_seg.models import Normalization
from napari_seg.training import TrainingData
from napari_seg.training.data import IGNORE_INDEX


def _data(pairs, **kwargs):
    options = {
        "in_channels": 1,
        "normalization": Normalization(),
        "label0": "unlabelled",
        "patch_size": 32,
        "validation_fraction": 0.25,
    }
    options.update(kwargs)
    return TrainingData(pairs, **options)


def test_a_few_strokes_on_a_large_image_are_sampled_often_and_rare_classes_too():
    image = np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32)
    labels = np.zeros((512, 512), np.uint8)
    labels[100:104, 50:400] = 1  # a long stroke
    labels[300:303, 300:303] = 2  # nine pixels of a rare class
    data = _data((image, labels), validation_fraction=0.0)
    rng = np.random.default_rng(1)
    hits = np.zeros(3)
    for _ in range(50):
        _, target = data.sample(rng, 4, sample_annotated=0.8)
        for t in target:
            hits += [np.any(t == c) for c in range(3)]
    assert hits[2] > 40  # uniform placement would almost never see class 2 (9 of 262144 px)
    assert hits[1] > 40
    assert hits[0] == 0  # label 0 means unlabelled here: never a target


def _training_target(data, shape, patch):
    """The training target of every pixel (patches tile the plane exactly)."""
    full = np.empty(shape, np.int64)
    for y in range(0, shape[0], patch):
        for x in range(0, shape[1], patch):
            _img, target = data.patch_at(0, 0, y + patch // 2, x + patch // 2)
            full[y : y + patch, x : x + patch] = target
    return full


def test_sparse_labels_hold_out_whole_strokes_and_score_only_them():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(128, 128)).astype(np.float32)
    labels = np.zeros((128, 128), np.uint8)
    for i in range(6):  # six strokes per class, some crossing block borders
        labels[10 + 20 * i : 13 + 20 * i, 5:70] = 1
        labels[8:120, 80 + 7 * i : 82 + 7 * i] = 2
    data = _data((image, labels))
    assert data.validation_metric == "agreement"
    target = _training_target(data, labels.shape, 32)
    ignored = (target == IGNORE_INDEX) & (labels > 0)
    assert ignored.any(), "some strokes should be held out"
    assert (target[labels == 0] == IGNORE_INDEX).all()  # 0 means unlabelled
    np.testing.assert_array_equal(target[~ignored & (labels > 0)], labels[~ignored & (labels > 0)])
    # whole strokes: each connected stroke is either all held out or all trained on
    from scipy import ndimage as ndi

    for cls in (1, 2):
        components, n = ndi.label(labels == cls, structure=np.ones((3, 3)))
        for k in range(1, n + 1):
            held = ignored[components == k]
            assert held.all() or not held.any()
        assert (target == cls).any(), f"class {cls} must keep strokes for training"
    # validation scores exactly the held-out stroke pixels
    scored = np.zeros(labels.shape, bool)
    for region in data.regions:
        item = data._validation_item(region)[1]
        m = 16  # VALIDATION_MARGIN
        ys = slice(max(0, region.ys.start - m), min(128, region.ys.stop + m))
        xs = slice(max(0, region.xs.start - m), min(128, region.xs.stop + m))
        inner = item[: ys.stop - ys.start, : xs.stop - xs.start]
        scored[ys, xs] |= inner != IGNORE_INDEX
    np.testing.assert_array_equal(scored, ignored)


def test_dense_labels_hold_out_blocks_as_before():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(128, 128)).astype(np.float32)
    labels = rng.integers(0, 3, (128, 128)).astype(np.uint8)
    data = _data((image, labels), label0="background")
    assert data.validation_metric == "iou"
    held = np.zeros((128, 128), bool)
    for r in data.regions:
        held[r.ys, r.xs] = True
    assert held.any()
    target = _training_target(data, labels.shape, 32)
    expected = labels.astype(np.int64)
    expected[held] = IGNORE_INDEX
    np.testing.assert_array_equal(target, expected)


def test_stacks_train_as_planes_and_lazy_inputs_are_read_by_patch():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    image = rng.normal(size=(6, 96, 96)).astype(np.float32)
    labels = (image > 0.5).astype(np.uint8)
    lazy = da.from_array(image, chunks=(1, 32, 32))
    reads = []
    original = lazy.__getitem__

    class Counting:
        shape, dtype, ndim = lazy.shape, lazy.dtype, lazy.ndim

        def __getitem__(self, index):
            reads.append(index)
            return original(index)

    data = _data((Counting(), labels), axis=0, label0="background")
    assert data.sources[0].layout.n_planes == 6
    reads.clear()
    images, targets = data.sample(np.random.default_rng(0), 3, 0.8)
    assert images.shape == (3, 1, 32, 32)
    assert targets.shape == (3, 32, 32)
    assert len(reads) == 3
    for index in reads:
        assert isinstance(index[0], int)  # one plane
        assert index[1].stop - index[1].start == 32  # one patch, never the whole image


def test_pairs_of_different_sizes_and_small_planes_are_padded():
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(40, 50)).astype(np.float32), rng.integers(0, 2, (40, 50), np.uint8))
    b = (rng.normal(size=(20, 20)).astype(np.float32), rng.integers(0, 2, (20, 20), np.uint8))
    data = _data([a, b], label0="background", patch_size=32)
    images, targets = data.sample(np.random.default_rng(0), 8, 0.5)
    assert images.shape == (8, 1, 32, 32)
    padded = targets[:, 20:, 20:]
    assert np.any(padded == IGNORE_INDEX)


@pytest.mark.parametrize(
    ("labels", "kwargs", "error", "message"),
    [
        (np.zeros((60, 64), np.uint8), {}, ValueError, "does not match the image shape"),
        (np.full((64, 64), 0.5, np.float32), {}, TypeError, "integer class ids, got float32 v"),
        (np.zeros((64, 64), np.uint8), {}, ValueError, "no annotated pixel"),
        (np.ones((64, 64), np.uint8), {}, ValueError, "only class 1"),
        (np.zeros((64, 64), np.uint8), {"label0": "background"}, ValueError, "only class 0"),
        (np.full((64, 64), -1, np.int32), {}, ValueError, "must be >= 0"),
        (np.full((64, 64), 4000, np.uint16), {}, ValueError, "class ids must be below"),
    ],
)
def test_bad_labels_are_named(labels, kwargs, error, message):
    image = np.zeros((64, 64), np.float32)
    with pytest.raises(error, match=message):
        _data((image, labels), names=["cells / paint"], **kwargs)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("architecture", ["unet", "pixel-classifier"])
@pytest.mark.parametrize("label0", ["unlabelled", "background"])
def test_training_leaves_the_callers_int64_labels_as_they_were(dims, architecture, label0):
    """Labels held as int64 (NumPy's default integers, and napari's Labels layers made
    from them) were read as views: the targets' ignored pixels (-100) were written into
    the caller's array, and a second pass over them found nothing annotated."""
    from napari_seg.sample_data import cells_2d, cells_3d
    from napari_seg.training import train

    image, truth = cells_3d((16, 32, 32), seed=1) if dims == 3 else cells_2d((64, 64), seed=1)
    labels = (truth + 1).astype(np.int64)
    if label0 == "unlabelled":
        labels[1::3] = 0  # every third slice or row left unpainted
    before = labels.copy()
    options = {"depth": 2, "base_width": 4} if architecture == "unet" else {"max_sigma": 2}
    budget = {"epochs": 1, "steps_per_epoch": 1, "minutes": None}
    train((image, labels), dims=dims, architecture=architecture, label0=label0, options=options,
          device="cpu", validation_fraction=0.3, **budget)  # fmt: skip
    np.testing.assert_array_equal(labels, before)


@pytest.mark.parametrize("dims", [2, 3])
def test_a_run_that_says_it_has_more_classes_takes_their_ids(dims):
    """Ids of 256 and more are refused as likely instance labels, unless the run says
    it has that many classes (a config's num_classes, a model to fine-tune): a
    301-class config used to be refused on its own labels."""
    from napari_seg.training import train

    shape = (8, 32, 32) if dims == 3 else (32, 32)
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    labels = np.ones(shape, np.uint16)
    labels[..., 16:] = 300
    options = {"depth": 2, "base_width": 4}
    settings = dict(architecture="unet", dims=dims, label0="background", options=options,
                    epochs=1, steps_per_epoch=1, minutes=None, patch_size=32, batch_size=1,
                    validation_fraction=0.0, device="cpu")  # fmt: skip
    if dims == 3:
        settings.update(patch_3d=(8, 32, 32))
    with pytest.raises(ValueError, match=r"class ids must be below 256.*num_classes"):
        train((image, labels), **settings)
    result = train((image, labels), num_classes=301, **settings)
    assert result.model.spec.num_classes == 301


@pytest.mark.parametrize(("label0", "ids", "absent"), [
    ("unlabelled", (2, 3), "1"),  # strokes painted with labels 2 and 3
    ("background", (0, 2), "1"),  # a mask whose class 1 was deleted
])  # fmt: skip
def test_class_ids_below_the_largest_without_a_pixel_are_warned_of(label0, ids, absent):
    """A model of ids 0..3 trained on strokes 2 and 3 learned never to predict class 1,
    unsaid; id 0 of sparse strokes means "not annotated" and is no such class."""
    image = np.random.default_rng(0).normal(size=(96, 96)).astype(np.float32)
    labels = np.zeros((96, 96), np.uint8)
    if label0 == "background":
        labels[:] = ids[0]
    for i in range(4):
        labels[5 + 20 * i : 9 + 20 * i, 5:40] = ids[0]
        labels[5 + 20 * i : 9 + 20 * i, 55:90] = ids[1]
    (warning,) = [w for w in _data((image, labels), label0=label0).warnings if "no pixel" in w]
    assert f"no pixel of class id(s) {absent} is annotated for training" in warning
    full = labels.copy()
    full[90:94, 5:90] = 1  # every id below the largest painted
    assert not [w for w in _data((image, full), label0=label0).warnings if "no pixel" in w]
