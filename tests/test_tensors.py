"""Torch and MONAI tensors taken as arrays by the Python API (predict, train, evaluate,
the live classifier): PyTorch and MONAI users hold images and labels as tensors, and
numpy failed on them ("Cannot interpret 'torch.float32' as a data type")."""

import numpy as np
import pytest
import torch

from napari_seg.arrays.views import host_array
from napari_seg.inference import predict
from napari_seg.metrics import evaluate
from napari_seg.models import ModelSpec, create_model
from napari_seg.sample_data import cells_2d
from napari_seg.training import TrainingConfig, train
from napari_seg.training.live import LiveClassifier


@pytest.fixture(scope="module")
def data():
    image, labels = cells_2d((96, 96), seed=3)
    return image, labels.astype(np.int64)


def _tensor_kinds():
    kinds = [pytest.param(torch.from_numpy, id="torch")]
    try:
        from monai.data import MetaTensor
    except ImportError:  # MONAI is a test dependency; its absence skips only its case
        kinds.append(pytest.param(None, id="monai", marks=pytest.mark.skip("no MONAI")))
    else:
        kinds.append(pytest.param(lambda a: MetaTensor(torch.from_numpy(a)), id="monai"))
    return kinds


@pytest.mark.parametrize("as_tensor", _tensor_kinds())
def test_tensors_give_what_their_arrays_give(data, as_tensor):
    image, labels = data
    torch.manual_seed(0)
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    found = predict(model, as_tensor(image), device="cpu")
    np.testing.assert_array_equal(found.labels, predict(model, image, device="cpu").labels)
    scored = evaluate(as_tensor(found.labels.astype(np.int64)), as_tensor(labels))
    assert scored.scores.mean_iou == evaluate(found.labels, labels).scores.mean_iou
    config = TrainingConfig(
        epochs=1, steps_per_epoch=2, patch_size=32, batch_size=2, minutes=None,
        options={"depth": 2, "base_width": 4}, device="cpu",
    )  # fmt: skip
    trained = train((as_tensor(image), as_tensor(labels)), config)
    assert trained.model.spec.num_classes == int(labels.max()) + 1
    strokes = np.zeros(labels.shape, np.int64)
    strokes[10:14, 10:40], strokes[60:64, 50:80] = 1, 2
    live = LiveClassifier(as_tensor(image), device="cpu").update(as_tensor(strokes))
    assert set(np.unique(live.labels)) <= {0, 1, 2}
    assert live.labels.shape == labels.shape


def test_host_array_copies_only_what_numpy_cannot_share():
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    shared = host_array(tensor)
    tensor[0, 0] = 7  # a CPU tensor's memory is shared, as torch.Tensor.numpy()
    assert shared[0, 0] == 7
    assert shared.dtype == np.float32
    wide = host_array(tensor.to(torch.bfloat16).requires_grad_())  # numpy has no bfloat16
    assert wide.dtype == np.float32
    assert wide[0, 0] == 7
    array = np.zeros(3)
    assert host_array(array) is array  # anything else: as it is


def test_a_dask_array_of_unknown_shape_is_named_by_every_job(data):
    """Boolean indexing gives dask arrays of shape (nan, N): predict failed with
    "cannot convert float NaN to integer"."""
    import dask.array as da

    image, labels = data
    lazy = da.from_array(image, chunks=32)
    unknown = lazy[lazy[:, 0] >= 0]  # every row, but dask cannot know it
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    message = r"shape \(nan, 96\) is not known yet .* call array\.compute_chunk_sizes\(\)"
    with pytest.raises(ValueError, match=message):
        predict(model, unknown, device="cpu")
    with pytest.raises(ValueError, match=message):
        evaluate(unknown.astype(np.int64), labels)
    with pytest.raises(ValueError, match=message):
        LiveClassifier(unknown, device="cpu")
    with pytest.raises(ValueError, match=message):
        train((unknown, labels), TrainingConfig(epochs=1, minutes=None, device="cpu"))
    known = predict(model, unknown.compute_chunk_sizes(), device="cpu")
    assert known.labels.shape == image.shape


def test_a_plane_in_pytorch_s_channel_first_layout_is_taken(data):
    """A ``(1, H, W)`` image, as PyTorch and MONAI hold a grayscale plane, was refused
    by ``predict`` ("choose the axis to go through slice by slice") and, with ``(H, W)``
    labels, by ``train`` (the shapes did not match): its length-1 axis is a stack of one
    for ``predict`` (labels of the same shape) and the channel its labels lack for
    ``train``."""
    image, labels = data
    torch.manual_seed(0)
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    plane = torch.from_numpy(image)[None]
    found = predict(model, plane, device="cpu")
    assert found.labels.shape == (1, *image.shape)
    np.testing.assert_array_equal(found.labels[0], predict(model, image, device="cpu").labels)
    config = TrainingConfig(
        epochs=1, steps_per_epoch=1, patch_size=32, batch_size=2, minutes=None,
        options={"depth": 2, "base_width": 4}, device="cpu",
    )  # fmt: skip
    trained = train((plane, torch.from_numpy(labels)), config)
    assert trained.model.spec.in_channels == 1


def test_a_napari_layer_given_for_an_array_is_told_to_give_its_data(data):
    """From napari's console, ``evaluate(viewer.layers["pred"], viewer.layers["gt"])``
    said only "got Labels": the message now says to give the layer's ``.data``."""
    layers = pytest.importorskip("napari.layers", reason="napari makes the layers")
    image, labels = data
    pred, truth = layers.Labels(labels), layers.Labels(labels)
    advice = r"got Labels \(a napari layer: give its \.data\)"
    with pytest.raises(TypeError, match=advice):
        evaluate(pred, truth)
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    with pytest.raises(TypeError, match=r"got Image \(a napari layer: give its \.data\)"):
        predict(model, layers.Image(image))
    with pytest.raises(TypeError, match=advice):
        train((image, truth), epochs=1, minutes=None, device="cpu")


def test_nested_lists_are_arrays_and_anything_else_is_refused_at_the_call(data):
    """As scikit-image's functions take lists (``np.asarray``): ``predict`` refused a
    nested list that ``evaluate`` and ``refine`` took, and ``LiveClassifier("abc")``
    was refused only at its first fit, as "pair 0: image must be an array"."""
    image, labels = data
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    found = predict(model, image.tolist(), device="cpu")
    np.testing.assert_array_equal(found.labels, predict(model, image, device="cpu").labels)
    strokes = np.zeros(labels.shape, np.int64)
    strokes[10:14, 10:40], strokes[60:64, 50:80] = 1, 2
    live = LiveClassifier(image.tolist(), device="cpu").update(strokes.tolist())
    assert live.labels.shape == labels.shape
    with pytest.raises(TypeError, match=r"^image must be an array \(numpy, dask or zarr\), got s"):
        LiveClassifier("cells.tif", device="cpu")
    ragged = "image must be an array; nested lists must all have one length each level"
    with pytest.raises(TypeError, match=ragged):
        predict(model, [[0.0, 1.0], [2.0]], device="cpu")
    with pytest.raises(TypeError, match=r"pair 0: labels must be an array \(numpy, dask or zarr\)"):
        train((image, "labels.tif"), epochs=1, minutes=None, device="cpu")


def test_what_numpy_reads_through_its_protocols_is_an_array(data):
    """``predict(model, Image.open("cells.png"))`` was refused ("got Image") where
    ``numpy.asarray`` and so scikit-image take a PIL image (its array interface) or a
    memoryview (the buffer protocol); a palette image gives its indices, as the file
    reader reads a palette PNG's ids. Strings and bytes are still refused by name."""
    from PIL import Image

    from napari_seg import refine

    image, labels = data
    pixels = (image * 255).astype(np.uint8)
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    expected = predict(model, pixels, device="cpu").labels
    np.testing.assert_array_equal(
        predict(model, Image.fromarray(pixels), device="cpu").labels, expected
    )
    np.testing.assert_array_equal(predict(model, memoryview(pixels), device="cpu").labels, expected)
    ids = labels.astype(np.uint8)
    palette = Image.fromarray(ids, mode="P")
    np.testing.assert_array_equal(evaluate(palette, ids).scores.iou, evaluate(ids, ids).scores.iou)
    np.testing.assert_array_equal(refine.erosion(palette, 1), refine.erosion(ids, 1))
    for given in (b"cells", "cells.png"):
        with pytest.raises(TypeError, match=r"image must be an array \(numpy, dask or zarr\), got"):
            predict(model, given, device="cpu")


def test_a_masked_array_is_refused_where_pixels_are_masked(data):
    """Every job read a masked array's masked pixels as real values, silently: an
    evaluation "outside the region" scored them, a prediction segmented them. With
    nothing masked (as some readers give any array) it is its data."""
    from napari_seg import refine

    image, labels = data
    outside = np.zeros(labels.shape, bool)
    outside[:, :8] = True
    masked_gt = np.ma.array(labels, mask=outside)
    message = rf"gt is a masked array with {outside.sum()} masked pixel\(s\).*gt.filled\(value\)"
    with pytest.raises(ValueError, match=message):
        evaluate(labels, masked_gt)
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    with pytest.raises(ValueError, match=r"image is a masked array .* ignore_labels"):
        predict(model, np.ma.array(image, mask=outside), device="cpu")
    with pytest.raises(ValueError, match=r"labels is a masked array"):
        refine.erosion(np.ma.array(labels, mask=outside), 1)
    with pytest.raises(ValueError, match=r"^pair 0: labels is a masked .* give labels.filled"):
        train((image, np.ma.array(labels, mask=outside)), epochs=1, minutes=None, device="cpu")
    unmasked = np.ma.array(labels, mask=np.zeros(labels.shape, bool))
    np.testing.assert_array_equal(
        evaluate(unmasked, labels).scores.iou, evaluate(labels, labels).scores.iou
    )
    np.testing.assert_array_equal(
        predict(model, np.ma.array(image), device="cpu").labels,
        predict(model, image, device="cpu").labels,
    )


def test_label_maps_held_as_floats_of_whole_numbers_are_ids(data):
    """MONAI's ``LoadImage`` gives label maps as float32 tensors, and many scripts
    save them so; the file readers read such files as ids, but the Python API refused
    the arrays ("must hold integer label ids, got float32") in evaluate, train and
    refine. Floats that are not ids (0.5, NaN) are still refused by name."""
    from napari_seg import refine

    image, labels = data
    as_float = torch.from_numpy(labels.astype(np.float32))
    np.testing.assert_allclose(
        evaluate(as_float, as_float).scores.iou, evaluate(labels, labels).scores.iou
    )
    np.testing.assert_array_equal(refine.erosion(as_float, 1), refine.erosion(labels, 1))
    config = TrainingConfig(
        epochs=1, steps_per_epoch=1, patch_size=32, batch_size=2, minutes=None,
        options={"depth": 2, "base_width": 4}, device="cpu",
    )  # fmt: skip
    trained = train((image, as_float), config)
    assert trained.model.spec.num_classes == int(labels.max()) + 1
    halves = as_float / 2
    with pytest.raises(TypeError, match="got float32 values that are not all whole numbers"):
        evaluate(halves, as_float)
    with pytest.raises(TypeError, match="got float32 values that are not all whole numbers"):
        train((image, halves), config)
    with pytest.raises(TypeError, match="got float32 values that are not all whole numbers"):
        refine.erosion(halves, 1)


def test_monai_data_dicts_are_training_pairs(data):
    """MONAI's datasets hold items as ``{"image": ..., "label": ...}``; ``train`` said
    "pair 0 must be an (image, labels) pair, got dict". A dict of file paths (a data
    list before ``LoadImaged``) is named as such."""
    image, labels = data
    config = TrainingConfig(
        epochs=1, steps_per_epoch=1, patch_size=32, batch_size=2, minutes=None,
        options={"depth": 2, "base_width": 4}, device="cpu",
    )  # fmt: skip
    item = {"image": torch.from_numpy(image)[None], "label": torch.from_numpy(labels)[None]}
    assert train([item, item], config).model.spec.num_classes == int(labels.max()) + 1
    assert train(item, config).model.spec.in_channels == 1
    with pytest.raises(TypeError, match=r"pair 0 holds file paths .* napari-seg train --image"):
        train([{"image": "img.nii.gz", "label": "seg.nii.gz"}], config)
    with pytest.raises(ValueError, match="pair 0 is a dict without 'image' and 'label'"):
        train([{"img": image, "seg_mask": labels}], config)


def test_a_multiscale_layer_s_data_is_read_at_its_finest_level(data):
    """From napari's console, ``predict(model, viewer.layers["img"].data)`` of a
    multiscale layer (an OME-Zarr pyramid) failed inside with "list indices must be
    integers or slices, not tuple"; the docks segment its finest level, and so does
    the API now. A plain list of arrays of several shapes is named."""
    layers = pytest.importorskip("napari.layers", reason="napari makes the layers")
    image, labels = data
    model = create_model(ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4}))
    pyramid = layers.Image([image, image[::2, ::2]], multiscale=True).data
    found = predict(model, pyramid, device="cpu")
    np.testing.assert_array_equal(found.labels, predict(model, image, device="cpu").labels)
    stored = layers.Labels([labels, labels[::2, ::2]], multiscale=True).data
    assert evaluate(stored, labels).scores.mean_iou == 1.0
    with pytest.raises(TypeError, match=r"a multiscale pyramid\? give its finest level"):
        predict(model, [image, image[::2, ::2]], device="cpu")
