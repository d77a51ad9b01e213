"""Refine jobs: configs, per-slice application, inputs, cancelling."""

import numpy as np
import pytest

from napari_seg import refine
from napari_seg.refine import OPERATIONS, RefineConfig, RefineStep, get_operation, iter_refine


def specks(shape=(3, 10, 10), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    labels[..., 2:8, 2:8] = 1
    labels[rng.random(shape) < 0.05] = 2
    return labels


def test_steps_get_defaults_and_bad_params_are_named():
    step = RefineStep("remove-small-objects", {"min_size": 5}).validate()
    assert step.op == "remove_small_objects"
    assert step.params["min_size"] == 5
    assert step.params["connectivity"] == 1
    with pytest.raises(ValueError, match="unknown refine operation 'blur'; valid: remove_small"):
        RefineStep("blur").validate()
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['size'\]; it takes"):
        RefineStep("opening", {"size": 2}).validate()
    with pytest.raises(ValueError, match=r"\['radiuss'\] \(radiuss: did you mean radius\?\);"):
        RefineStep("opening", {"radiuss": 2}).validate()
    with pytest.raises(ValueError, match=r"'remove-small' \(did you mean remove_small_objects\?\)"):
        RefineStep("remove-small").validate()
    with pytest.raises(ValueError, match="target is required"):
        RefineStep("merge_classes", {"sources": [1]}).validate()
    with pytest.raises(TypeError, match="radius must be an integer"):
        RefineStep("opening", {"radius": 1.5}).validate()
    with pytest.raises(ValueError, match="replace_with must be one of"):
        RefineStep("keep_largest", {"replace_with": "x"}).validate()
    with pytest.raises(ValueError, match="at least one step"):
        RefineConfig().validate()


def test_command_line_values_parse_by_kind():
    op = get_operation("relabel")
    assert op.param_map["mapping"].parse("1:2, 2:1") == {1: 2, 2: 1}
    assert get_operation("opening").param_map["classes"].parse("1,3") == (1, 3)
    assert get_operation("dilation").param_map["over_classes"].parse("yes") is True
    with pytest.raises(ValueError, match="min_size must be an integer, got 'ten'"):
        get_operation("remove_small_objects").param_map["min_size"].parse("ten")


def test_a_mapping_takes_json_string_keys_and_refuses_fractions():
    """A JSON file's keys are strings, so "1" is id 1; but 2.7 was read as 2 and a
    key 1.5 as 1 (``int()``), relabelling a class nobody named."""
    assert RefineStep("relabel", {"mapping": {"1": 2}}).validate().params["mapping"] == {1: 2}
    for mapping in ({"1": 2.7}, {1.5: 2}, {True: 2}, {"one": 2}):
        with pytest.raises(TypeError, match="mapping must map integer ids to ids"):
            RefineStep("relabel", {"mapping": mapping}).validate()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_files_round_trip(tmp_path, suffix):
    config = RefineConfig(
        steps=(
            RefineStep("remove_small_objects", {"min_size": 3, "classes": [2]}),
            RefineStep("relabel", {"mapping": {1: 3}}),
        ),
        per_slice=True,
    ).validate()
    path = config.save(tmp_path / f"pipe{suffix}")
    assert RefineConfig.load(path) == config
    # A bare list of steps is a pipeline too.
    (tmp_path / "list.yaml").write_text("- op: opening\n  params: {radius: 2}\n")
    assert RefineConfig.load(tmp_path / "list.yaml").steps[0].params["radius"] == 2
    unknown = r"unknown refine setting\(s\) \['axes'\] \(axes: did you mean axis\?\); known"
    with pytest.raises(ValueError, match=unknown):
        RefineConfig.from_dict({"steps": [{"op": "opening"}], "axes": 1})
    (tmp_path / "bad.yaml").write_text("steps: [op: {")
    with pytest.raises(ValueError, match="not valid YAML"):
        RefineConfig.load(tmp_path / "bad.yaml")


def test_pipeline_equals_the_functions_in_order():
    labels = specks()
    config = RefineConfig(
        steps=(
            RefineStep("remove_small_objects", {"min_size": 2}),
            RefineStep("closing", {"radius": 1}),
        )
    )
    expected = refine.closing(refine.remove_small_objects(labels, 2), 1)
    before = labels.copy()
    np.testing.assert_array_equal(refine.refine(labels, config), expected)
    np.testing.assert_array_equal(labels, before)


def test_per_slice_applies_each_plane_in_2d():
    labels = specks()
    config = RefineConfig(steps=(RefineStep("majority", {"radius": 1}),), per_slice=True, axis=0)
    expected = np.stack([refine.majority(plane, 1) for plane in labels])
    np.testing.assert_array_equal(refine.refine(labels, config), expected)
    volumetric = refine.refine(labels, RefineConfig(steps=config.steps))
    np.testing.assert_array_equal(volumetric, refine.majority(labels, 1))
    assert not np.array_equal(volumetric, expected)
    # Along another axis.
    by_rows = RefineConfig(steps=config.steps, per_slice=True, axis=1)
    np.testing.assert_array_equal(
        refine.refine(labels, by_rows),
        np.stack([refine.majority(labels[:, i], 1) for i in range(10)], axis=1),
    )


def test_per_slice_instances_are_unique_in_the_stack():
    labels = np.zeros((2, 6, 6), np.uint8)
    labels[:, 1:3, 1:3] = 1
    labels[:, 4:6, 4:6] = 1
    config = RefineConfig(steps=(RefineStep("connected_components"),), per_slice=True)
    out = refine.refine(labels, config)
    assert config.makes_instances
    assert sorted(np.unique(out)) == [0, 1, 2, 3, 4]


def test_per_slice_along_two_axes_refines_each_plane_of_a_4d_stack():
    labels = np.stack([specks(seed=1), specks(seed=2)])  # (T, Z, Y, X) = (2, 3, 10, 10)
    steps = (RefineStep("majority", {"radius": 1}),)
    config = RefineConfig(steps=steps, per_slice=True, axis=[1, 0]).validate()
    assert config.axis == (1, 0)
    assert RefineConfig.from_dict(config.to_dict()) == config
    expected = np.stack([[refine.majority(plane, 1) for plane in stack] for stack in labels])
    np.testing.assert_array_equal(refine.refine(labels, config), expected)
    by_volume = RefineConfig(steps=steps, per_slice=True, axis=0)
    volumes = np.stack([refine.majority(stack, 1) for stack in labels])
    np.testing.assert_array_equal(refine.refine(labels, by_volume), volumes)
    assert not np.array_equal(volumes, expected)
    # Objects numbered plane by plane: ids unique over the stack, never across planes.
    objects = RefineConfig(steps=(RefineStep("connected_components"),), per_slice=True)
    planes = refine.refine(labels, RefineConfig(steps=objects.steps, per_slice=True, axis=(0, 1)))
    counts = [int(refine.connected_components(p).max()) for s in labels for p in s]
    assert planes.max() == sum(counts)
    assert planes.dtype == np.int32
    ids = [set(np.unique(p)) - {0} for s in planes for p in s]
    assert sum(len(i) for i in ids) == len(set().union(*ids)) == sum(counts)
    with pytest.raises(ValueError, match=r"along axes \(0, 1\) leaves 1D slices"):
        refine.refine(labels[0], RefineConfig(steps=steps, per_slice=True, axis=(0, 1)))
    with pytest.raises(ValueError, match="lists an axis twice"):
        refine.refine(labels, RefineConfig(steps=steps, per_slice=True, axis=(0, -4)))
    with pytest.raises(ValueError, match="at least one axis"):
        RefineConfig(steps=steps, per_slice=True, axis=()).validate()
    # 2D labels are their own slice; an axis they lack was passed over without a word.
    plane = labels[0, 0]
    per_row = RefineConfig(steps=steps, per_slice=True, axis=1)
    np.testing.assert_array_equal(refine.refine(plane, per_row), refine.majority(plane, 1))
    with pytest.raises(ValueError, match="axis 5 is out of range for an image with 2 dim"):
        refine.refine(plane, RefineConfig(steps=steps, per_slice=True, axis=5))


def test_per_slice_keeps_a_stack_of_one_slice_a_stack():
    labels = specks(shape=(1, 10, 10))
    config = RefineConfig(steps=(RefineStep("majority", {"radius": 1}),), per_slice=True)
    out = refine.refine(labels, config)
    assert out.shape == labels.shape
    np.testing.assert_array_equal(out[0], refine.majority(labels[0], 1))


def test_a_channel_axis_after_two_slice_axes_is_counted_in_the_plane():
    labels = np.stack([specks(shape=(2, 16, 16), seed=s) for s in (3, 4)])  # (2, 2, 16, 16)
    image = np.random.default_rng(0).random((2, 2, 3, 16, 16)).astype(np.float32)  # C third
    probs = np.stack([labels == 0, labels != 0]).astype(np.float32) * 0.8 + 0.1
    crf = RefineConfig(
        steps=(RefineStep("crf", {"iterations": 2, "device": "cpu"}),), per_slice=True, axis=(0, 1)
    )
    out = refine.refine(labels, crf, image=image, probabilities=probs, channel_axis=2)
    dev = "cpu"
    expected = [
        [
            refine.crf_refine(probs[:, t, z], image[t, z], iterations=2, channel_axis=0, device=dev)
            for z in range(2)
        ]
        for t in range(2)
    ]
    np.testing.assert_array_equal(out, np.array(expected))


def test_the_crf_reads_the_image_axis_the_labels_lack_as_channels():
    """A CYX image for YX labels, no channel axis given: the CRF reads its channels
    (it was refused: 'image must cover the labels' pixels (16, 16), got (2, 16, 16)')."""
    labels = specks(shape=(16, 16), seed=2)
    image = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    probs = np.stack([labels == 0, labels != 0]).astype(np.float32) * 0.8 + 0.1
    crf = RefineConfig(steps=(RefineStep("crf", {"iterations": 2, "device": "cpu"}),))
    out = refine.refine(labels, crf, image=image, probabilities=probs)
    expected = refine.crf_refine(probs, image, iterations=2, channel_axis=0, device="cpu")
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="image must cover the labels' pixels"):
        refine.refine(labels, crf, image=image[:, :8], probabilities=probs)
    # a probabilities file of the labels' shape (no class axis) was refused as "must cover
    # the labels' pixels (16, 16), got shape (16, 16)"; the message says what is missing
    wanted = r"\(16, 16\) with a plane per class, \(classes, 16, 16\), got shape \(16, 16\)"
    with pytest.raises(ValueError, match=wanted):
        refine.refine(labels, crf, image=image, probabilities=probs[1])


def test_inputs_are_checked_and_sliced():
    labels = specks(shape=(2, 16, 16))
    crf = RefineConfig(
        steps=(RefineStep("crf", {"iterations": 2, "device": "cpu"}),), per_slice=True
    )
    with pytest.raises(ValueError, match="crf needs an image"):
        refine.refine(labels, crf, probabilities=np.ones((2, 2, 16, 16)))
    image = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    probs = np.stack([labels == 0, labels != 0]).astype(np.float32) * 0.8 + 0.1
    with pytest.raises(ValueError, match="image must cover the labels' pixels"):
        refine.refine(labels, crf, image=image[:, :8], probabilities=probs, channel_axis=-1)
    out = refine.refine(labels, crf, image=image, probabilities=probs, channel_axis=-1)
    expected = [
        refine.crf_refine(probs[:, i], image[i], iterations=2, channel_axis=-1, device="cpu")
        for i in range(2)
    ]
    np.testing.assert_array_equal(out, np.stack(expected))
    region = np.zeros(labels.shape, bool)
    region[1, :4, :4] = True
    set_class = RefineConfig(steps=(RefineStep("set_class", {"value": 3}),), per_slice=True)
    out = refine.refine(labels, set_class, region=region)
    assert (out[1, :4, :4] == 3).all()
    assert (out[0] == labels[0]).all()


def test_progress_and_cancel():
    labels = specks()
    config = RefineConfig(
        steps=(RefineStep("opening", {"radius": 1}), RefineStep("closing", {"radius": 1})),
        per_slice=True,
    )
    events = iter_refine(labels, config)
    first = next(events)
    assert (first.done, first.total, first.op) == (1, 6, "opening")
    events.close()  # cancelled: no result, input untouched
    np.testing.assert_array_equal(labels, specks())
    *_, last = list(iter_refine(labels, config))
    assert last.done == last.total == 6


def test_the_crf_reports_progress_within_its_step():
    labels = specks(shape=(12, 12))
    image = np.random.default_rng(0).random((12, 12)).astype(np.float32)
    probs = np.stack([labels == 0, labels == 1, labels == 2]).astype(np.float32) * 0.8 + 0.1
    crf = RefineConfig(steps=(RefineStep("crf", {"iterations": 4, "device": "cpu"}),))
    done = [e.done for e in iter_refine(labels, crf, image=image, probabilities=probs)]
    assert done == [0.25, 0.5, 0.75, 1]


def test_every_operation_runs_on_2d_and_3d():
    rng = np.random.default_rng(1)
    for shape in [(12, 12), (3, 12, 12)]:
        labels = (rng.random(shape) < 0.3).astype(np.uint8)
        labels[rng.random(shape) < 0.1] = 2
        inputs = {
            "image": rng.random(shape).astype(np.float32),
            "probabilities": rng.dirichlet([1, 1, 1], size=shape)
            .astype(np.float32)
            .transpose(-1, *range(len(shape))),
            "region": rng.random(shape) < 0.5,
            "reference": labels,
        }
        required = {
            "merge_classes": {"sources": [2], "target": 1},
            "relabel": {"mapping": {2: 1}},
            "set_class": {"value": 1},
            "crf": {"iterations": 1, "radius": 1, "device": "cpu"},
        }
        for name, op in OPERATIONS.items():
            config = RefineConfig(steps=(RefineStep(name, required.get(name, {})),))
            given = {k: inputs[k] for k in op.needs + op.optional}
            if op.volume_only and labels.ndim == 2:
                with pytest.raises(ValueError, match="3D volume"):
                    refine.refine(labels, config, **given)
                continue
            out = refine.refine(labels, config, **given)
            assert out.shape == labels.shape, name


@pytest.mark.parametrize(
    ("op", "params", "message"),
    [
        ("dilation", {"radius": 5000}, "radius must be at most 128"),
        ("majority", {"radius": 5000}, "radius must be at most 128"),
        ("watershed_split", {"min_distance": 5000}, "min_distance must be at most 128"),
        ("crf", {"radius": 5000}, "radius must be at most 32"),
        ("crf", {"iterations": 10**9}, "iterations must be at most 1000"),
    ],
)
def test_parameters_that_size_allocations_are_bounded(op, params, message):
    with pytest.raises(ValueError, match=message):
        RefineStep(op, params).validate()


def test_the_functions_check_the_same_bounds():
    labels = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="radius must be at most 128"):
        refine.dilation(labels, 5000)
    with pytest.raises(ValueError, match="min_distance must be at most 128"):
        refine.watershed_split(labels, min_distance=5000)
    with pytest.raises(ValueError, match="radius must be at most 32"):
        refine.crf_refine(np.full((2, 8, 8), 0.5, np.float32), labels, radius=5000)


def _warnings(labels, *steps):
    from napari_seg._generators import drain

    return drain(iter_refine(labels, RefineConfig(steps=tuple(steps)))).warnings


def test_ids_a_job_names_that_the_labels_lack_are_warned_of():
    """``--classes 3`` on labels of 0/1/2 changed nothing and said nothing; a background
    the labels do not hold made every id a class and wrote a new id into the output,
    silently. Each is a warning now, naming the step, the ids and what the labels hold;
    ids are followed through steps that keep them known (relabel, merge) and not past a
    step that numbers objects."""
    labels = np.zeros((20, 20), np.uint8)
    labels[2:8, 2:8], labels[12:18, 12:18] = 1, 2
    step = RefineStep
    [found] = _warnings(labels, step("keep_largest", {"classes": (3,)}))
    assert found == "keep_largest: classes [3] not in the labels (they hold [0, 1, 2])"
    [found] = _warnings(labels, step("opening", {"background": 5}))
    assert found.startswith("opening: background 5 is not in the labels (they hold [0, 1, 2])")
    assert found.endswith("so every id there is taken for a class")
    [found] = _warnings(labels, step("opening", {"background": 5, "classes": (1,)}))
    assert found.endswith("it is the id of unlabelled pixels")
    [found] = _warnings(labels, step("merge_classes", {"sources": (1, 9), "target": 4}))
    assert found.startswith("merge_classes: sources [9] not in")
    [found] = _warnings(labels, step("relabel", {"mapping": {7: 1, 1: 2}}))
    assert found.startswith("relabel: mapping [7] not in")
    # followed through the steps: 1 became 7, so 7 is there and 1 is not
    relabelled = step("relabel", {"mapping": {1: 7}})
    assert _warnings(labels, relabelled, step("keep_largest", {"classes": (7,)})) == ()
    [found] = _warnings(labels, relabelled, step("keep_largest", {"classes": (1,)}))
    assert found.startswith("keep_largest: classes [1] not in the labels (they hold [0, 2, 7])")
    # numbered objects are ids no one can name before the job runs: not checked
    numbered = step("connected_components", {})
    assert _warnings(labels, numbered, step("keep_largest", {"classes": (9,)})) == ()
    assert _warnings(labels, step("opening", {}), step("fill_holes", {"classes": (1, 2)})) == ()
    signed = labels.astype(np.int32) - 1  # a negative id: counted without bincount
    [found] = _warnings(signed, step("opening", {"background": 1, "classes": (3,)}))
    assert found == "opening: classes [3] not in the labels (they hold [-1, 0, 1])"


def test_a_job_may_be_given_as_its_steps_alone():
    """A pipeline file may hold a bare list of steps (``RefineConfig.from_dict``), but
    ``refine(labels, [...])`` and ``refine(labels, RefineStep(...))`` were refused:
    "config must be a RefineConfig or a dict of its settings, got list"."""
    labels = specks((12, 12))
    job = RefineConfig(steps=(RefineStep("opening", {"radius": 1}),))
    expected = refine.refine(labels, job)
    for given in (
        [{"op": "opening", "params": {"radius": 1}}],
        [RefineStep("opening", {"radius": 1})],
        RefineStep("opening", {"radius": 1}),
    ):
        np.testing.assert_array_equal(refine.refine(labels, given), expected)
    with pytest.raises(ValueError, match=r'each step must look like \{"op": NAME'):
        refine.refine(labels, [("opening", {"radius": 1})])
