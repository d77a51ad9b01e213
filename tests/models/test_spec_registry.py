import json
import re

import pytest

from napari_seg.models import ModelSpec, Normalization, create_model, get_architecture
from napari_seg.models import list_architectures as archs

EXPECTED = {
    "fcn",
    "unet",
    "unet++",
    "unet3+",
    "attention-unet",
    "dynunet",
    "segresnet",
    "swin-unetr",
    "deeplabv3",
    "deeplabv3+",
    "fpn",
    "pixel-classifier",
    "scribble-unet",
}


def test_registry_has_the_literature_architectures_with_descriptions():
    assert {a.name for a in archs()} == EXPECTED
    for arch in archs():
        assert arch.description
        assert "\n" not in arch.description
        if arch.encoders:
            assert arch.default_encoder in arch.encoders


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(ValueError, match="unknown architecture 'segnet'") as info:
        get_architecture("segnet")
    assert all(name in str(info.value) for name in EXPECTED)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("unet3d", "(unet in 3D: unet with --dims 3, spatial_dims=3 in Python)"),
        ("DynUNet-3D", "(dynunet in 3D: dynunet with --dims 3, spatial_dims=3 in Python)"),
        ("attention_unet", "(did you mean attention-unet?)"),
        ("deeplab", "(did you mean deeplabv3?)"),
    ],
)
def test_an_unknown_architecture_names_the_one_meant(name, hint):
    """A typo, or a dimensionality in the name (MONAI's and nnU-Net's users say
    "3D U-Net"), is answered with the name to use, before the list of all."""
    with pytest.raises(ValueError, match=f"unknown architecture '{name}' {re.escape(hint)}; valid"):
        get_architecture(name)


def test_lookup_is_case_insensitive():
    assert get_architecture("DeepLabV3+").name == "deeplabv3+"


def test_unknown_encoder_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown encoder 'vgg99'.*resnet34"):
        ModelSpec("fpn", 3, 2, encoder="vgg99").validate()
    with pytest.raises(ValueError, match=r"'resnet-34' \(did you mean resnet34\?\) for"):
        ModelSpec("fpn", 3, 2, encoder="resnet-34").validate()
    with pytest.raises(ValueError, match=r"\['dept'\] \(dept: did you mean depth\?\) for"):
        ModelSpec("unet", 1, 2, options={"dept": 3}).validate()


def test_encoder_on_encoderless_architecture_is_refused():
    with pytest.raises(ValueError, match="has no encoder choice"):
        ModelSpec("attention-unet", 1, 2, encoder="resnet18").validate()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 0}, "in_channels must be an integer >= 1"),
        ({"in_channels": 1.5}, "in_channels must be an integer"),
        ({"num_classes": 1}, "num_classes must be an integer >= 2"),
        ({"class_names": ("a", "b", "c")}, "one name per class"),
        ({"class_names": ("a", "a")}, "must be unique"),
        ({"options": {"depth": 9}}, "option 'depth' must be between 2 and 6"),
        ({"options": {"colour": 1}}, r"unknown option\(s\) \['colour'\]"),
        ({"encoder": "resnet18", "options": {"base_width": 8}}, "unknown option"),
        ({"normalization": Normalization("zscore")}, "normalization method"),
        ({"normalization": Normalization(low=50, high=10)}, "percentiles"),
        ({"normalization": Normalization("window")}, "'window' needs its window"),
        ({"normalization": Normalization("window", window=(250.0, -175.0))}, "lowest < highest"),
        ({"normalization": Normalization("window", window=(0.0, 1e-40))}, "too close"),
        ({"normalization": Normalization("window", window=(0.0, float("nan")))}, "finite"),
        ({"normalization": Normalization(window=(0.0, 1.0))}, "not 'percentile'"),
    ],
)
def test_invalid_specs_name_the_problem(kwargs, message):
    base = {"architecture": "unet", "in_channels": 1, "num_classes": 2}
    with pytest.raises((ValueError, TypeError), match=message):
        ModelSpec(**{**base, **kwargs}).validate()


def test_spec_json_round_trip_and_defaults():
    spec = ModelSpec(
        "deeplabv3+",
        3,
        3,
        encoder="resnet18",
        class_names=("bg", "cell", "nucleus"),
        normalization=Normalization("meanstd", mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2)),
        options={"output_stride": 8},
    ).validate()
    again = ModelSpec.from_json(json.dumps(json.loads(spec.to_json())))
    assert again == spec
    ct = ModelSpec("unet", 1, 3, normalization=Normalization("window", window=(-175.0, 250.0)))
    assert ModelSpec.from_json(json.dumps(json.loads(ct.validate().to_json()))) == ct
    assert ct.to_dict()["normalization"]["window"] == [-175.0, 250.0]
    # a card without a window has no "window" key, which versions before it refuse
    assert "window" not in spec.to_dict()["normalization"]
    assert ModelSpec("unet", 1, 3).class_names == ("background", "class 1", "class 2")
    assert ModelSpec("unet", 1, 3).class_colors[0][3] == 0.0  # background transparent


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match="unknown model spec setting"):
        ModelSpec.from_dict({"architecture": "unet", "in_channels": 1, "num_classes": 2, "x": 1})
    # a model card's misspelt key is named with the closest known one, as config files are
    typo = {"architecture": "unet", "in_channels": 1, "num_classes": 2, "clas_names": ["a", "b"]}
    with pytest.raises(ValueError, match=r"\(clas_names: did you mean class_names\?\)"):
        ModelSpec.from_dict(typo)
    with pytest.raises(ValueError, match="missing required keys"):
        ModelSpec.from_dict({"architecture": "unet"})


def test_create_model_resolves_default_encoder():
    model = create_model(ModelSpec("fpn", 1, 2))
    assert model.spec.encoder == "resnet34"
    assert model.spec.network == "fpn (resnet34)"
    # A network without an encoder was "swin-unetr (None)" in napari-seg create's line.
    assert ModelSpec("swin-unetr", 1, 2).network == "swin-unetr (no encoder)"


def test_create_model_takes_an_architecture_name_and_spec_fields():
    # As segmentation-models-pytorch's create_model("unet", ...): a name and fields.
    by_name = create_model("FPN", in_channels=2, num_classes=3, encoder="resnet18")
    assert by_name.spec == create_model(ModelSpec("fpn", 2, 3, encoder="resnet18")).spec
    assert by_name.spec.in_channels == 2
    # As ModelSpec names it (and smp's create_model(arch=...)): once "missing 'spec'".
    keyword = create_model(architecture="fpn", in_channels=2, num_classes=3, encoder="resnet18")
    assert keyword.spec == by_name.spec


def test_create_model_takes_an_architecture_s_options_as_keywords():
    """As segmentation-models-pytorch's ``create_model(arch, **kwargs)`` and MONAI's
    networks take them; ``depth=2`` was "unknown model setting(s) ['depth']"."""
    model = create_model("unet", in_channels=1, num_classes=2, depth=2, base_width=8)
    assert model.spec.options == {"depth": 2, "base_width": 8}
    mixed = create_model("unet", in_channels=1, num_classes=2, depth=2, options={"base_width": 8})
    assert mixed.spec == model.spec
    with pytest.raises(TypeError, match=re.escape("option(s) ['depth'] given both")):
        create_model("unet", in_channels=1, num_classes=2, depth=2, options={"depth": 3})
    with pytest.raises(TypeError, match=re.escape("options must be a mapping, got 5")):
        create_model("unet", in_channels=1, num_classes=2, depth=2, options=5)
    with pytest.raises(ValueError, match="option 'depth' must be between"):
        create_model("unet", in_channels=1, num_classes=2, depth=99)
    with pytest.raises(TypeError, match=re.escape("(width: did you mean base_width?)")):
        create_model("unet", in_channels=1, num_classes=2, width=8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: create_model(3), "ModelSpec or an architecture's name"),
        (lambda: create_model({"architecture": "unet"}), "got dict"),
        (lambda: create_model(ModelSpec("unet", 1, 2), num_classes=3), "spec.with_"),
        (lambda: create_model("unet"), "in_channels"),
        (  # once Python's "unexpected keyword argument", without the known ones
            lambda: create_model("unet", in_channels=1, num_classes=2, dims=3),
            "unknown model setting(s) ['dims']; known: ['background',",
        ),
    ],
)
def test_create_model_refuses_what_is_not_a_spec_by_name(call, message):
    # Once an AttributeError: "'str' object has no attribute 'validate'".
    with pytest.raises(TypeError, match=re.escape(message)):
        call()
