"""Label ids left out of training (``ignore_labels``): a dataset's void id."""

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from napari_seg.models import Normalization
from napari_seg.training import TrainingConfig, TrainingData, train
from napari_seg.training.data import FILLED, IGNORE_INDEX
from napari_seg.training.ignored import IgnoredIds, ignoring
from napari_seg.training.instances import InstanceClasses
from napari_seg.training.volume import VolumeData

VOID = 255


def with_void(labels):
    """``labels`` with a void ring (255) drawn around every object, as Pascal VOC
    draws it: the pixels nobody could tell apart."""
    out = labels.astype(np.uint8)
    out[find_boundaries(labels, mode="outer") & (labels == 0)] = VOID
    return out


def plane_data(image, labels, **kwargs):
    """The training data of dense labels whose void is left out."""
    return TrainingData(
        ignoring([(image, labels)], [VOID]), in_channels=1, normalization=Normalization(),
        label0="background", patch_size=32, **kwargs,
    )  # fmt: skip


def test_the_setting_is_validated_and_kept_in_the_run_record():
    config = TrainingConfig(ignore_labels=[255, 0]).validate()
    assert config.ignore_labels == (255, 0)
    assert TrainingConfig.from_dict(config.to_dict()).ignore_labels == (255, 0)
    assert "ignore_labels" not in TrainingConfig().to_dict()  # as before the setting
    assert TrainingConfig(ignore_labels=(-1,)).validate().ignore_labels == (-1,)
    with pytest.raises(TypeError, match=r"ignore_labels must hold whole-number label ids, got 2\."):
        TrainingConfig(ignore_labels=(2.5,)).validate()
    with pytest.raises(TypeError, match="ignore_labels must be a list of label ids"):
        TrainingConfig(ignore_labels="255").validate()


def test_ignored_ids_read_as_the_ignore_index_region_by_region():
    labels = np.array([[0, 1, 255], [2, 255, 7]], np.uint8)
    seen = IgnoredIds(labels, [255, 7])
    assert (seen.shape, seen.dtype, seen.ndim) == ((2, 3), np.int64, 2)
    np.testing.assert_array_equal(seen[:, 1:], [[1, IGNORE_INDEX], [IGNORE_INDEX, IGNORE_INDEX]])
    np.testing.assert_array_equal(np.asarray(seen)[0], [0, 1, IGNORE_INDEX])
    assert labels[0, 2] == 255  # the user's labels are read, never changed
    pairs = [("image", labels)]
    assert ignoring(pairs, ()) is pairs


def test_dense_labels_train_their_classes_and_not_the_void(make_blobs):
    image, objects = make_blobs((128, 128), seed=0)
    labels = with_void(objects)
    data = plane_data(image, labels, validation_fraction=0.0)
    assert data.max_label == 1  # two classes, not 256
    kept = labels[labels != VOID]
    np.testing.assert_array_equal(data.class_counts, np.bincount(kept))
    for y in range(0, 128, 32):
        for x in range(0, 128, 32):
            _, target = data.patch_at(0, 0, y + 16, x + 16)
            truth = labels[y : y + 32, x : x + 32].astype(np.int64)
            np.testing.assert_array_equal(target, np.where(truth == VOID, IGNORE_INDEX, truth))


def test_validation_scores_no_void_pixel(make_blobs):
    image, objects = make_blobs((128, 128), seed=1)
    labels = with_void(objects)
    data = plane_data(image, labels, validation_fraction=0.25)
    targets = [t for batch in data.validation_batches(4) for _, t in batch]
    assert targets
    values = np.unique(np.concatenate([t.ravel() for t in targets]))
    assert set(values.tolist()) <= {IGNORE_INDEX, 0, 1}
    void = sum(int((t == IGNORE_INDEX).sum()) for t in targets)
    assert void > 0  # the void rings inside the held-out blocks are left out


def test_a_volume_leaves_its_void_out_of_training_and_of_the_fill():
    from napari_seg.sample_data import cells_3d

    image, labels = cells_3d((24, 32, 32), seed=0)
    dense = with_void(labels)
    data = VolumeData(
        ignoring([(image, dense)], [VOID]), in_channels=1, normalization=Normalization(),
        label0="background", patch=(16, 16, 16), validation_fraction=0.0,
    )  # fmt: skip
    assert data.max_label == int(labels.max())
    np.testing.assert_array_equal(data.class_counts, np.bincount(dense[dense != VOID]))
    # strokes on every 4th slice, void among them; the fill between slices keeps it out
    sparse = np.zeros(labels.shape, np.uint8)
    sparse[::4] = labels[::4] + 1
    sparse[::4][dense[::4] == VOID] = VOID
    data = VolumeData(
        ignoring([(image, sparse)], [VOID]), in_channels=1, normalization=Normalization(),
        label0="unlabelled", patch=(16, 16, 16), validation_fraction=0.0, fill=True,
    )  # fmt: skip
    assert data.max_label == int(labels.max()) + 1
    target = data._target(0, (slice(None), slice(None), slice(None)))
    assert (target[sparse == VOID] == IGNORE_INDEX).all()
    assert (target[::4][sparse[::4] != VOID] != IGNORE_INDEX).all()
    filled = target[target >= FILLED] - FILLED  # between slices: classes, never the void
    assert filled.size
    assert set(np.unique(filled).tolist()) <= set(range(1, data.max_label + 1))


def test_instance_labels_keep_their_void_out_of_objects_and_boundaries(make_instances):
    _, objects = make_instances(seed=0)
    objects = objects.astype(np.int32)
    objects[:6] = 9999  # a band nobody annotated, given an id of its own
    seen = InstanceClasses(IgnoredIds(objects, [9999]), "boundaries")
    assert seen.dtype == np.int64
    classes = seen[:, :]
    assert (classes[:6] == IGNORE_INDEX).all()
    assert set(np.unique(classes[6:]).tolist()) <= {0, 1, 2}
    plain = InstanceClasses(np.where(objects == 9999, 0, objects), "boundaries")[:, :]
    np.testing.assert_array_equal(classes[6:], plain[6:])
    assert InstanceClasses(objects, "foreground").dtype == np.uint8  # nothing left out


def test_a_run_with_a_void_id_trains_the_classes_and_names_the_setting(tiny, make_blobs):
    image, objects = make_blobs((96, 96), seed=2)
    labels = with_void(objects * 2)  # classes 0 and 2, void 255
    with pytest.raises(ValueError, match=r"If 255 marks pixels to leave out .*\(--ignore 255;"):
        train([(image, labels)], tiny)
    quick = tiny.with_(epochs=1, steps_per_epoch=1, validation_fraction=0.0)
    result = train([(image, labels)], quick.with_(ignore_labels=(VOID,)))
    assert result.model.spec.num_classes == 3
    counts = result.model.card["provenance"]["training"]["data"]["class_pixels"]
    assert counts == np.bincount(labels[labels != VOID]).tolist()


def test_instance_labels_with_a_void_id_train(tiny, make_instances):
    image, objects = make_instances(seed=0)
    objects = objects.astype(np.int32)
    objects[:8] = 9999
    quick = tiny.with_(epochs=1, steps_per_epoch=1, validation_fraction=0.0)
    result = train([(image, objects)], quick.with_(instances="foreground", ignore_labels=(9999,)))
    assert result.model.spec.class_names == ("background", "object")
    counts = result.model.card["provenance"]["training"]["data"]["class_pixels"]
    assert sum(counts) == objects.size - objects[:8].size


def test_a_plane_left_out_whole_is_no_class_and_no_error(make_blobs):
    image, objects = make_blobs((64, 64), seed=3)
    labels = np.stack([objects, np.full_like(objects, VOID)])
    data = plane_data(np.stack([image, image]), labels, axis=0, validation_fraction=0.0)
    assert data.max_label == 1
    np.testing.assert_array_equal(data.class_counts, np.bincount(objects.ravel()))


@pytest.mark.parametrize("mode", [None, "foreground"])
def test_a_negative_not_annotated_id_is_named_then_left_out(tiny, make_instances, mode):
    """Some tools write -1 for "not annotated": refused with the setting that helps,
    then left out (the refusal once named a setting that took no negative id)."""
    image, objects = make_instances(seed=0)
    labels = objects.astype(np.int32) if mode else (objects > 0).astype(np.int32)
    labels[:6] = -1
    quick = tiny.with_(epochs=1, steps_per_epoch=1, validation_fraction=0.0, instances=mode)
    with pytest.raises(ValueError, match=r"found -1; .*\(napari-seg train --ignore -1\)"):
        train([(image, labels)], quick, names=["cells"])
    result = train([(image, labels)], quick.with_(ignore_labels=(-1,)))
    counts = result.model.card["provenance"]["training"]["data"]["class_pixels"]
    assert sum(counts) == labels[6:].size
