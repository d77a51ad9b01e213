"""Instance labels (one id per object) trained as objects, or objects and boundaries."""

import numpy as np
import pytest
from skimage.measure import label
from skimage.segmentation import find_boundaries

from napari_seg.metrics import object_count
from napari_seg.metrics._arrays import MIN_INSTANCE_IDS
from napari_seg.models import ModelSpec, create_model
from napari_seg.training import TrainingConfig, train
from napari_seg.training.instances import InstanceClasses


def expected(labels, mode):
    classes = (labels > 0).astype(np.uint8)
    if mode == "boundaries":
        classes[find_boundaries(labels, mode="inner") & (labels > 0)] = 2
    return classes


@pytest.mark.parametrize("mode", ["foreground", "boundaries"])
def test_regions_read_as_the_whole_image_converted(mode, make_instances):
    _, labels = make_instances()
    whole = expected(labels, mode)
    view = InstanceClasses(labels, mode)
    assert view.shape == labels.shape
    assert view.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(view), whole)
    rng = np.random.default_rng(1)
    for _ in range(20):  # a region's boundaries are the whole image's, at its edges too
        y0, x0 = rng.integers(0, 80), rng.integers(0, 110)
        ys, xs = slice(y0, y0 + rng.integers(1, 40)), slice(x0, x0 + rng.integers(1, 40))
        np.testing.assert_array_equal(view[ys, xs], whole[ys, xs])
    np.testing.assert_array_equal(view[5], whole[5])
    np.testing.assert_array_equal(view[-1, 3:9], whole[-1, 3:9])
    assert view[10, 20] == whole[10, 20]
    np.testing.assert_array_equal(view[[1, 4]], whole[[1, 4]])  # any other index too
    with pytest.raises(IndexError):
        view[200, 0]


def test_a_plane_of_a_stack_has_the_boundaries_of_the_plane(make_instances):
    _, a = make_instances(seed=0)
    _, b = make_instances(seed=1)
    stack = np.stack([a, b, a])
    view = InstanceClasses(stack, "boundaries")
    np.testing.assert_array_equal(view[1], expected(b, "boundaries"))
    np.testing.assert_array_equal(view[1, 10:50, 20:60], expected(b, "boundaries")[10:50, 20:60])
    # a slab is read as a volume: the objects' faces between planes are boundaries too
    volume = np.asarray(view[0:3])
    np.testing.assert_array_equal(volume, expected(stack, "boundaries"))


def test_instance_labels_are_told_from_class_labels(make_instances):
    _, instances = make_instances()
    assert object_count(instances) == len(np.unique(instances)) - 1
    assert object_count(instances > 0) == 0  # one class in many regions
    few = label(instances > 0)
    few[few >= MIN_INSTANCE_IDS] = 1
    assert object_count(few) == 0  # too few ids to tell
    # many classes, each in several places (a semantic map of 20 classes)
    tiles = np.kron(np.arange(40).reshape(5, 8) % 20 + 1, np.ones((8, 8), int))
    assert object_count(tiles) == 0
    assert object_count(instances.astype(np.float32)) == 0  # not ids at all


def test_training_on_instance_labels_is_refused_without_a_conversion(tiny, make_instances):
    pairs = [make_instances(seed=0), make_instances(seed=1)]
    with pytest.raises(ValueError, match="look like instance labels") as info:
        train(pairs, tiny)
    assert "pair 0" in str(info.value)
    assert "instances" in str(info.value)
    # told that these are classes: trained as classes
    classes = int(max(lab.max() for _, lab in pairs)) + 1
    quick = tiny.with_(epochs=1, steps_per_epoch=1)
    result = train(pairs, quick.with_(num_classes=classes))
    assert result.model.spec.num_classes == classes
    # so is a model of that many classes to fine-tune (the Model dock's way)
    model = create_model(
        ModelSpec("unet", in_channels=1, num_classes=classes, options=tiny.options)
    )
    assert train(pairs, quick, model=model).model.spec.num_classes == classes


def test_a_mask_saved_as_0_255_is_refused_with_the_way_out(tiny, make_instances):
    image, objects = make_instances(seed=0)
    mask = np.where(objects > 0, 255, 0).astype(np.uint8)
    with pytest.raises(ValueError, match=r"use 2 ids \(0, 255\).* 256 classes, 254 of them"):
        train([(image, mask)], tiny)
    quick = tiny.with_(epochs=1, steps_per_epoch=1)
    foreground = train([(image, mask)], quick.with_(instances="foreground"))
    assert foreground.model.spec.class_names == ("background", "object")
    # a few ids among few classes are classes as ever (ids 0, 1, 2, 5 of 6)
    classes = np.where(objects > 0, objects % 3, 0).astype(np.uint8)
    classes[classes == 2] = 5
    assert train([(image, classes)], quick).model.spec.num_classes == 6
    confirmed = train([(image, mask)], quick.with_(num_classes=256))  # said so: trained
    assert confirmed.model.spec.num_classes == 256


def test_a_time_series_of_track_ids_is_told_and_refused(tiny, make_instances):
    """The Cell Tracking Challenge's layout: an object keeps its id in every frame, at
    another place, so each id forms separate regions through the stack."""
    frames = [make_instances((64, 80), n=30, seed=s) for s in range(5)]
    image = np.stack([f[0] for f in frames])
    tracks = np.stack([f[1] for f in frames])  # ids 1..n again in every frame
    assert object_count(tracks) == len(np.unique(tracks[2])) - 1  # the middle frame's
    assert object_count((tracks > 0).astype(np.uint8)) == 0
    with pytest.raises(ValueError, match="look like instance labels"):
        train([(image, tracks)], tiny.with_(axis=0))
    quick = tiny.with_(axis=0, epochs=1, steps_per_epoch=1, instances="foreground")
    assert train([(image, tracks)], quick).model.spec.num_classes == 2


@pytest.mark.parametrize(
    ("mode", "names"),
    [
        ("foreground", ("background", "object")),
        ("boundaries", ("background", "object", "boundary")),
    ],
)
def test_instance_labels_train_objects_and_boundaries(tiny, mode, names, make_instances):
    pairs = [make_instances(seed=0), make_instances(seed=1)]
    result = train(pairs, tiny.with_(instances=mode, validation_fraction=0.0, loss="auto"))
    assert result.model.spec.class_names == names
    training = result.model.card["provenance"]["training"]
    assert training["loss"] == ("weighted-ce" if mode == "boundaries" else "ce+dice")
    assert result.model.spec.background == 0
    counts = result.model.card["provenance"]["training"]["data"]["class_pixels"]
    want = np.bincount(np.concatenate([expected(lab, mode).ravel() for _, lab in pairs]))
    assert counts == want.tolist()


def test_the_instances_setting_is_validated():
    assert TrainingConfig(instances="boundaries").validate().instances == "boundaries"
    with pytest.raises(ValueError, match="instances must be one of"):
        TrainingConfig(instances="objects").validate()
    with pytest.raises(ValueError, match="label0='background'"):
        TrainingConfig(instances="foreground", label0="unlabelled").validate()
    assert "instances" not in TrainingConfig().to_dict()  # as before the setting existed
    config = TrainingConfig(instances="foreground")
    assert TrainingConfig.from_dict(config.to_dict()).instances == "foreground"


def test_a_3d_run_learns_the_boundaries_of_objects_in_3d(make_instances):
    image, objects = make_instances((20, 32, 32), n=20, radius=(4.0, 4.0))
    result = train(
        (image, objects), dims=3, instances="boundaries", validation_fraction=0.0, epochs=1,
        steps_per_epoch=2, minutes=None, options={"depth": 2, "base_width": 4}, device="cpu",
    )  # fmt: skip
    assert result.model.spec.class_names == ("background", "object", "boundary")
    counts = result.model.card["provenance"]["training"]["data"]["class_pixels"]
    assert counts == np.bincount(expected(objects, "boundaries").ravel()).tolist()


@pytest.mark.parametrize("mode", ["foreground", "boundaries"])
def test_negative_ids_are_refused_not_taken_for_objects(tiny, mode, make_instances):
    image, objects = make_instances(seed=0)
    objects = objects.astype(np.int32)
    objects[:4] = -1  # e.g. "not annotated", as some tools write it
    with pytest.raises(ValueError, match=r"cells: instance labels must be 0 .* found -1"):
        train([(image, objects)], tiny.with_(instances=mode), names=["cells"])
