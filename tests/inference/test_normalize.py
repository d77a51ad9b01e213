import numpy as np
import pytest

from napari_seg.arrays.normalize import compute_stats
from napari_seg.inference import resolve_layout
from napari_seg.models import Normalization


def _stats(image, method="percentile", **kw):
    layout = resolve_layout(image.shape, in_channels=1)
    return layout, compute_stats(image, layout, Normalization(method=method, **kw))


def test_percentile_maps_percentiles_to_0_and_1():
    image = np.random.default_rng(0).gamma(2.0, 100.0, (200, 300)).astype(np.uint16)
    layout, stats = _stats(image, low=1.0, high=99.8)
    lo, hi = np.percentile(image, [1.0, 99.8])
    out = stats.apply(layout.read(image, (), slice(None), slice(None)))
    assert not stats.sampled
    np.testing.assert_allclose(np.percentile(out, [1.0, 99.8]), [0.0, 1.0], atol=1e-5)
    assert stats.offset[0] == pytest.approx(lo)
    assert stats.scale[0] == pytest.approx(1 / (hi - lo))


def test_minmax_and_meanstd():
    image = np.linspace(10, 20, 64 * 64, dtype=np.float32).reshape(64, 64)
    layout, stats = _stats(image, "minmax")
    out = stats.apply(layout.read(image, (), slice(None), slice(None)))
    assert out.min() == pytest.approx(0)
    assert out.max() == pytest.approx(1)
    layout, stats = _stats(image, "meanstd")
    out = stats.apply(layout.read(image, (), slice(None), slice(None)))
    assert out.mean() == pytest.approx(0, abs=1e-5)
    assert out.std() == pytest.approx(1, abs=1e-4)
    layout, stats = _stats(image, "meanstd", mean=(10.0,), std=(2.0,))
    assert stats.offset[0] == 10
    assert stats.scale[0] == 0.5


def test_constant_image_does_not_divide_by_zero():
    image = np.full((32, 32), 7, np.uint8)
    layout, stats = _stats(image)
    out = stats.apply(layout.read(image, (), slice(None), slice(None)))
    assert np.all(out == 0)


def test_nan_and_inf_are_left_out_and_mapped_into_range():
    image = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    image[:4] = np.nan
    image[5, 5], image[6, 6] = np.inf, -np.inf
    layout, stats = _stats(image, "minmax")
    assert stats.nonfinite_fraction == pytest.approx((4 * 64 + 2) / 64**2)
    out = stats.apply(layout.read(image, (), slice(None), slice(None)))[0]
    assert np.isfinite(out).all()
    assert np.all(out[:4] == 0)
    assert out[5, 5] == 1
    assert out[6, 6] == 0


def test_all_nan_is_an_error():
    with pytest.raises(ValueError, match="no finite value"):
        _stats(np.full((16, 16), np.nan, np.float32))


def test_lazy_inputs_are_sampled_by_blocks(counting_array):
    data = np.random.default_rng(2).integers(0, 4000, (3000, 3000), dtype=np.uint16)
    lazy = counting_array(data)
    _layout, stats = _stats(lazy)
    assert stats.sampled
    assert max(lazy.reads) <= 256 * 256
    assert sum(lazy.reads) < data.size
    lo, hi = np.percentile(data, [1.0, 99.8])
    assert stats.offset[0] == pytest.approx(lo, rel=0.05)
    assert 1 / stats.scale[0] + stats.offset[0] == pytest.approx(hi, rel=0.05)


@pytest.mark.parametrize("method", ["percentile", "minmax", "meanstd"])
def test_a_constant_image_at_the_top_of_uint64_does_not_divide_by_zero(method):
    """float(2**64 - 1) + 1 == float(2**64 - 1): the span of such an image vanishes."""
    image = np.full((40, 40), 2**64 - 1, np.uint64)
    layout, stats = _stats(image, method)
    out = stats.apply(layout.read(image, (), slice(None), slice(None)))
    assert np.isfinite(out).all()
    assert stats.scale[0] == 1.0


@pytest.mark.parametrize(
    "dtype", [np.bool_, np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64]
)
def test_normalising_into_a_buffer_equals_converting_first(dtype):
    """Predict's loader normalises the image's own dtype straight into its batch buffer
    (read_raw + apply(out=)): the values must be those of read + apply, bit for bit,
    and the image itself must not change."""
    rng = np.random.default_rng(2)
    image = (rng.random((3, 40, 50)) * 70000 - 50).astype(dtype)
    if np.dtype(dtype).kind == "f":
        image[0, 0, 0], image[1, 1, 1], image[2, 2, 2] = np.nan, np.inf, -np.inf
    before = image.copy()
    layout = resolve_layout(image.shape, in_channels=3, channel_axis=0)
    stats = compute_stats(image, layout, Normalization(method="minmax"))
    region = (slice(3, 37), slice(5, 45))
    expected = stats.apply(layout.read(image, (), *region))
    raw = layout.read_raw(image, (), *region)
    assert raw.dtype == image.dtype
    out = np.full(expected.shape, -7.0, np.float32)
    assert stats.apply(raw, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(image, before)
    if dtype is not np.float32:  # in place only into float32, never into the image's dtype
        with pytest.raises(TypeError, match="float32"):
            stats.apply(raw.copy())


def test_a_fixed_window_maps_its_intensities_to_0_and_1_and_clips_as_monai_does():
    """Normalisation "window" (a CT's Hounsfield units) against MONAI's
    ``ScaleIntensityRange(a_min, a_max, 0, 1, clip=True)``; nothing is read from the
    image (the same mapping for every image, whatever its field of view)."""
    transforms = pytest.importorskip("monai.transforms", reason="MONAI is the oracle")
    rng = np.random.default_rng(0)
    ct = rng.integers(-1024, 3000, (2, 40, 50)).astype(np.int16)  # two channels
    layout = resolve_layout(ct.shape, in_channels=2, channel_axis=0)
    stats = compute_stats(ct, layout, Normalization("window", window=(-175.0, 250.0)))
    assert stats.clip
    assert not stats.sampled
    out = stats.apply(layout.read(ct, (), slice(None), slice(None)))
    monai = transforms.ScaleIntensityRange(-175.0, 250.0, 0.0, 1.0, clip=True)(
        ct.astype(np.float32)
    )
    np.testing.assert_allclose(out, np.asarray(monai), atol=1e-6)
    assert out.min() == 0.0
    assert out.max() == 1.0
    brighter = compute_stats(ct + 100, layout, Normalization("window", window=(-175.0, 250.0)))
    np.testing.assert_array_equal(brighter.offset, stats.offset)  # not the image's statistics
    buffer = np.empty(out.shape, np.float32)  # the predictor's path: raw int16 into a buffer
    np.testing.assert_array_equal(
        stats.apply(layout.read_raw(ct, (), *(slice(None),) * 2), out=buffer), out
    )


def test_an_image_outside_the_fixed_window_is_said_to_be():
    """A model normalising a CT's Hounsfield window (-175 to 250) given an MRI of
    intensities 300 to 3000 sees one constant image (all 1): the job says so, in the
    prediction's warnings; a CT with 40% air around the body says nothing."""
    from napari_seg.inference import predict
    from napari_seg.models import ModelSpec, create_model

    rng = np.random.default_rng(1)
    window = Normalization("window", window=(-175.0, 250.0))
    mri = rng.integers(300, 3000, (64, 64)).astype(np.uint16)
    layout = resolve_layout(mri.shape, in_channels=1)
    note = compute_stats(mri, layout, window).note
    assert note is not None
    assert (
        "100% of the examined pixels lie above the model's intensity window (-175 to 250)" in note
    )
    assert "all become 1" in note
    ct = np.where(rng.random((64, 64)) < 0.4, -1000, rng.normal(40, 40, (64, 64))).astype(np.int16)
    assert compute_stats(ct, layout, window).note is None
    spec = ModelSpec("unet", 1, 2, normalization=window, options={"depth": 2, "base_width": 4})
    result = predict(create_model(spec), mri)
    assert any("lie above the model's intensity window" in w for w in result.warnings)
