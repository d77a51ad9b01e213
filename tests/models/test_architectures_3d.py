"""The harness over every 3D entry of the registry (forward at odd sizes, backward at
batch 1 and 2, file round trip, wrong channel count) and the pooling plan."""

import pytest
import torch

from napari_seg.models import ModelSpec, create_model, list_architectures, load_model, save_model
from napari_seg.models._planning import plan_strides

# Small settings: a 3D network at default width takes seconds per pass on 2 cores.
SMALL = {
    "unet": {"depth": 3, "base_width": 4},
    "attention-unet": {"depth": 3, "base_width": 4},
    "dynunet": {"depth": 3, "base_width": 4},
    "segresnet": {"base_width": 8},
    "swin-unetr": {"feature_size": 12},
    "pixel-classifier": {"max_sigma": 4, "trees": 2, "depth": 3},
}
ARCHS_3D = [a.name for a in list_architectures() if 3 in a.dims]


def test_the_3d_entries():
    assert set(ARCHS_3D) >= {"unet", "attention-unet", "dynunet", "segresnet", "swin-unetr"}
    assert set(ARCHS_3D) <= set(SMALL)


@pytest.fixture(scope="module", params=ARCHS_3D)
def built(request):
    torch.manual_seed(0)
    spec = ModelSpec(
        request.param, 2, 3, spatial_dims=3, options=SMALL[request.param], spacing=(2.5, 1, 1)
    )
    return create_model(spec)


def odd_shape(model, batch=1):
    """Odd sizes that pad to twice the size multiple (deep enough for every network)."""
    m = max(model.size_multiple, 8)
    return (batch, 2, m + 3, 2 * m - 3, m + 5)


def test_forward_at_odd_sizes(built):
    built.eval()
    shape = odd_shape(built)
    with torch.inference_mode():
        out = built(torch.randn(*shape))
    assert out.shape == (1, 3, *shape[2:])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("batch", [1, 2])
def test_backward_gives_finite_gradients(built, batch):
    params = [p for p in built.parameters() if p.requires_grad]
    if not params:  # fitted in one pass (the pixel classifier's forest)
        return
    built.train()
    out, aux = built.forward_with_aux(torch.randn(*odd_shape(built, batch)))
    assert all(a.shape == out.shape for a in aux)
    loss = out.square().mean() + sum(a.square().mean() for a in aux)
    built.zero_grad()
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    assert len(grads) > 0.9 * len(params)
    assert all(torch.isfinite(g).all() for g in grads)


def test_file_round_trip(built, tmp_path):
    built.eval()
    loaded = load_model(save_model(built, tmp_path / "m3d.safetensors"))
    assert loaded.spec == built.spec
    assert loaded.spec.spatial_dims == 3
    assert loaded.spec.spacing == (2.5, 1.0, 1.0)
    x = torch.randn(*odd_shape(built))
    with torch.inference_mode():
        assert torch.equal(built(x), loaded(x))


def test_wrong_channel_count_and_a_2d_input_are_clear_errors(built):
    with pytest.raises(ValueError, match=r"expects 2 input channel\(s\), got 1"):
        built(torch.randn(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match=r"3D model needs input of shape \(N, C, D, H, W\)"):
        built(torch.randn(1, 2, 16, 16))


def test_deep_supervision_of_dynunet():
    spec = ModelSpec("dynunet", 1, 2, spatial_dims=3, options=SMALL["dynunet"])
    model = create_model(spec).train()
    out, aux = model.forward_with_aux(torch.randn(2, 1, 16, 16, 16))
    assert len(aux) == 2
    assert all(a.shape == out.shape for a in aux)
    model.eval()
    assert model.forward_with_aux(torch.randn(1, 1, 16, 16, 16))[1] == []


def test_pooling_is_planned_from_the_spacing():
    assert plan_strides((5.0, 0.5, 0.5), 4, 3) == [(1, 2, 2), (1, 2, 2), (1, 2, 2), (2, 2, 2)]
    assert plan_strides(None, 2, 3) == [(2, 2, 2), (2, 2, 2)]
    assert plan_strides((1.0, 1.0, 1.0), 1, 3) == [(2, 2, 2)]
    ct = ModelSpec("unet", 1, 2, spatial_dims=3, options=SMALL["unet"], spacing=(5.0, 0.5, 0.5))
    net = create_model(ct).net
    assert [tuple(p.kernel_size) for p in net.pools] == [(1, 2, 2)] * 3
    # z is pooled once in 3 levels: a 5 mm axis of 9 slices needs no padding to 8
    assert create_model(ct).size_multiple == 8


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"architecture": "unet", "encoder": "resnet18"}, "in 3D needs encoder classic"),
        ({"architecture": "fpn"}, "2D only"),
        ({"architecture": "unet", "spacing": (1.0, 1.0)}, "one size per spatial axis"),
        ({"architecture": "unet", "spacing": (1.0, 0.0, 1.0)}, "spacing must be > 0"),
    ],
)
def test_3d_spec_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(in_channels=1, num_classes=2, spatial_dims=3, **changes).validate()


@pytest.mark.parametrize("dims", [2, 3])
def test_classic_unet_inference_skips_the_concatenation(dims):
    """Without autograd, the classic U-Net's decoder convolves the skip and the
    upsampled map apart (no concatenation as wide as both): same outputs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    spec = ModelSpec("unet", in_channels=2, num_classes=3, spatial_dims=dims,
                     options={"depth": 2, "base_width": 4})  # fmt: skip
    model = create_model(spec).eval()
    x = torch.randn(2, 2, *(16,) * dims)
    with Ops() as training_ops:
        expected = model(x)
    with torch.inference_mode(), Ops() as inference_ops:
        got = model(x)
    assert training_ops.names.count("cat") == 2
    assert "cat" not in inference_ops.names
    torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-5)
