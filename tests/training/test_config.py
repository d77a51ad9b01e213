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


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_size": 10**6}, "batch_size must be at most 1024"),
        ({"patch_size": 10**6}, "patch_size must be at most 4096"),
        ({"batch_size": 512, "patch_size": 1024}, r"batch_size x patch_size\^2 must be at most"),
        ({"threads": 10**6}, "threads must be at most 256"),
        ({"epochs": 10**12}, "epochs must be at most"),
        ({"num_classes": 10**9}, "num_classes must be at most 1024"),
        ({"seed": 2**70}, "seed must be at most"),
        ({"axis": 10**9}, "axis must be at most 63"),
        ({"minutes": 1e300}, "minutes must be > 0.0 and <= 1000000.0"),
    ],
)
def test_every_number_has_a_bound_named_in_the_error(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig().with_(**changes)


def test_a_string_is_not_a_list_of_class_names(tmp_path):
    with pytest.raises(TypeError, match="class_names must be a list of names, got 'abc'"):
        TrainingConfig(class_names="abc").validate()
    path = tmp_path / "run.yaml"
    path.write_text("class_names: abc\n")
    with pytest.raises(TypeError, match="class_names must be a list of names"):
        TrainingConfig.load(path)


def test_a_window_is_recorded_only_when_set():
    """A run summary leaves out the settings it does not use, so that a version
    from before they existed reads it ("unknown setting" otherwise); the intensity
    window was written as ``null`` by every run."""
    assert "normalization_window" not in TrainingConfig().to_dict()
    config = TrainingConfig(normalization="window", normalization_window=(-175.0, 250.0))
    assert config.to_dict()["normalization_window"] == [-175.0, 250.0]
    assert TrainingConfig.from_dict(config.to_dict()).validate() == config


def test_fine_tuning_names_only_the_network_settings_it_cannot_take():
    """A fine-tuned model keeps its network: the run names the architecture, encoder
    and options asked that differ from the model's, its unstated options counted at
    their defaults (``depth=4`` is a default U-Net's depth, nothing to say)."""
    from napari_seg.models import ModelSpec, create_model
    from napari_seg.training._setup import kept_settings

    model = create_model(ModelSpec("unet", 1, 3, options={"base_width": 8}))
    assert kept_settings(TrainingConfig(options={"depth": 4, "base_width": 8}), model) == []
    assert kept_settings(TrainingConfig(architecture="unet", encoder="classic"), model) == []
    (said,) = kept_settings(TrainingConfig(architecture="fpn", options={"depth": 3}), model)
    assert said == (
        "fine-tuning keeps the model's network, unet (classic); the architecture fpn, "
        "option depth=3 asked build new models only"
    )
    assert kept_settings(TrainingConfig(architecture="fpn"), None) == []  # a new model


def test_epochs_alone_are_the_budget_as_on_the_command_line(tmp_path):
    """``TrainingConfig(epochs=50)`` (and ``train(pairs, epochs=50)``, a config file
    with ``epochs: 50``) kept the default 2-minute budget beside it, so training
    stopped after 2 minutes whatever the epochs, where ``napari-seg train --epochs
    50`` and the Train dock train 50 epochs. The 2 minutes are the budget only when
    neither is given; both given: the first reached."""
    assert TrainingConfig().time_budget == 2.0
    assert TrainingConfig(epochs=50).time_budget is None
    assert TrainingConfig(minutes=5).time_budget == 5
    assert TrainingConfig(epochs=50, minutes=5).time_budget == 5
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 50\n")
    assert TrainingConfig.load(path).time_budget is None
    assert TrainingConfig.given(None, epochs=3).time_budget is None


def test_a_run_records_the_time_budget_it_ran_under():
    """With neither epochs nor minutes the config says None for both; the run's
    config (its record, the model card) states the 2 minutes it ran under."""
    import threading

    from napari_seg.sample_data import cells_2d
    from napari_seg.training import train

    image, labels = cells_2d((64, 64), seed=1)
    stop = threading.Event()
    stop.set()  # stopped at the first check: the budget is what is looked at
    result = train(
        (image, labels), batch_size=2, patch_size=32, steps_per_epoch=1, stop=stop,
        options={"depth": 2, "base_width": 4}, device="cpu",
    )  # fmt: skip
    assert (result.config.minutes, result.config.epochs) == (2.0, None)
    by_epochs = train((image, labels), result.config.with_(minutes=None, epochs=1), stop=stop)
    assert (by_epochs.config.minutes, by_epochs.config.epochs) == (None, 1)
