import pytest

from napari_seg.training import TrainingConfig


def test_json_and_yaml_round_trip(tmp_path):
    config = TrainingConfig(
        architecture="fpn",
        encoder="resnet18",
        options={"depth": 4},
        class_names=("bg", "cell"),
        loss="weighted-focal",
        epochs=3,
        minutes=None,
        elastic=True,
    ).validate()
    assert TrainingConfig.from_json(config.to_json()) == config
    assert TrainingConfig.from_yaml(config.to_yaml()) == config
    for name in ("run.json", "run.yaml"):
        assert TrainingConfig.load(config.save(tmp_path / name)) == config


def test_a_run_summary_loads_as_its_config(tmp_path):
    import json

    config = TrainingConfig(loss="dice")
    path = tmp_path / "model.training.json"
    path.write_text(json.dumps({"config": config.to_dict(), "metrics": {}}))
    assert TrainingConfig.load(path) == config


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"loss": "hinge"}, ValueError, "loss must be one of"),
        ({"label0": "nothing"}, ValueError, "label0 must be one of"),
        ({"epochs": None, "minutes": None}, ValueError, "give a budget"),
        ({"minutes": 0}, ValueError, "minutes must be > 0"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"patch_size": 16}, ValueError, "patch_size must be >= 32"),
        ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate must be > 0"),
        ({"validation_fraction": 0.9}, ValueError, "validation_fraction must be"),
        ({"flips": "yes"}, TypeError, "flips must be true or false"),
        ({"class_names": ("a", "")}, ValueError, "class_names must be non-empty"),
    ],
)
def test_invalid_settings_are_named(changes, error, message):
    with pytest.raises(error, match=message):
        TrainingConfig().with_(**changes)


def test_unknown_keys_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainingConfig.from_dict({"lr": 0.1})
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        TrainingConfig.load(bad)
