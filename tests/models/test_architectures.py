"""One harness over every registered architecture (build, forward, backward, round trip)."""

import pytest
import torch

from napari_seg.models import (
    ModelSpec,
    create_model,
    get_architecture,
    list_architectures,
    load_model,
    save_model,
)

# Every architecture with its default encoder, plus a few other encoders.
CASES = [(a.name, a.default_encoder) for a in list_architectures()] + [
    ("unet", "resnet18"),
    ("unet++", "mobilenet_v2"),
    ("unet3+", "efficientnet-b0"),
    ("deeplabv3+", "mobilenet_v2"),
    ("fpn", "resnet18"),
    ("deeplabv3", "efficientnet-b0"),
]
IDS = [f"{a}-{e}" for a, e in CASES]
_UNUSED_HEAD = ("net.encoder._conv_head.", "net.encoder._bn1.")


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def built(request):
    arch, encoder = request.param
    torch.manual_seed(0)
    spec = ModelSpec(arch, in_channels=3, num_classes=4, encoder=encoder)
    return create_model(spec)


@pytest.mark.parametrize("shape", [(1, 3, 67, 93), (2, 3, 128, 96)])
def test_forward_any_size(built, shape):
    built.eval()
    with torch.inference_mode():
        out = built(torch.randn(*shape))
    assert out.shape == (shape[0], 4, *shape[2:])
    assert torch.isfinite(out).all()


def test_backward_batch_of_one_gives_finite_gradients(built):
    if get_architecture(built.spec.architecture).fitted != "gradient":
        # Fitted in one pass (a forest): no parameters; tests/training/test_pixel.py.
        assert not list(built.parameters())
        return
    built.train()
    x = torch.randn(1, 3, 64, 64)
    out, aux = built.forward_with_aux(x)
    loss = out.square().mean() + sum(a.square().mean() for a in aux)
    built.zero_grad()
    loss.backward()
    named = dict(built.named_parameters())
    unused = {n for n, p in named.items() if p.grad is None}
    # smp's EfficientNet encoders keep their (unused) ImageNet classification head.
    assert all(n.startswith(_UNUSED_HEAD) for n in unused), sorted(unused)
    grads = [p.grad for n, p in named.items() if n not in unused]
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(bool(g.abs().sum() > 0) for g in grads) > 0.9 * len(grads)


def test_eval_is_deterministic(built):
    built.eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        assert torch.equal(built(x), built(x))


def test_file_round_trip_is_bit_identical(built, tmp_path):
    built.eval()
    path = save_model(built, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.spec == built.spec
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        assert torch.equal(built(x), loaded(x))


@pytest.mark.parametrize("channels", [1, 2])
def test_wrong_channel_count_is_a_clear_error(built, channels):
    with pytest.raises(ValueError, match=rf"expects 3 input channel\(s\), got {channels}"):
        built(torch.randn(1, channels, 64, 64))


def test_a_float64_input_is_named_not_left_to_torch():
    """``model(torch.from_numpy(image))`` of a float64 NumPy image failed inside the
    network with torch's "expected scalar type Double but found Float"."""
    model = create_model(ModelSpec("unet", 1, 2, options={"depth": 2, "base_width": 4}))
    x = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"input is float64 .* give x\.float\(\)"):
        model(x)
    assert model(x.float()).dtype == torch.float32
    assert model.double()(x).dtype == torch.float64  # a float64 model takes it


@pytest.mark.parametrize("in_channels", [1, 2, 4, 5])
@pytest.mark.parametrize("arch", [a.name for a in list_architectures()])
def test_any_in_channels_and_class_count(arch, in_channels):
    # Classes > 255 matter for label dtypes downstream; keep one case cheap.
    classes = 300 if in_channels == 5 else 2
    options = {"depth": 2, "base_width": 4} if arch in ("unet", "attention-unet") else {}
    has_encoders = bool(get_architecture(arch).encoders) and arch not in ("fcn", "unet")
    encoder = "resnet18" if has_encoders else None
    spec = ModelSpec(arch, in_channels, classes, encoder=encoder, options=options)
    model = create_model(spec).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, in_channels, 33, 40))
    assert out.shape == (1, classes, 33, 40)


def test_deep_supervision_outputs():
    aux_counts = {}
    for arch, options in [("unet++", {"deep_supervision": True}), ("unet3+", {})]:
        spec = ModelSpec(arch, 1, 3, encoder="resnet18", options=options)
        model = create_model(spec).train()
        out, aux = model.forward_with_aux(torch.randn(2, 1, 64, 64))
        assert all(a.shape == out.shape for a in aux)
        aux_counts[arch] = len(aux)
    # U-Net++ supervises X^{0,1..4}: the main output plus three nested nodes.
    # UNet3+ (depth 5): the bottleneck plus decoder levels 4, 3 and 2.
    assert aux_counts == {"unet++": 3, "unet3+": 4}
    plain = create_model(ModelSpec("unet++", 1, 3, encoder="resnet18"))
    assert plain.forward_with_aux(torch.randn(1, 1, 64, 64))[1] == []


def test_classic_unet_depth_and_width():
    model = create_model(ModelSpec("unet", 1, 2, options={"depth": 3, "base_width": 8}))
    assert model.size_multiple == 8
    first = model.net.down[0][0]
    assert first.out_channels == 8
    assert len(model.net.down) == 4
