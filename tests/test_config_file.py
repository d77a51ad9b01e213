"""Job files (JSON/YAML): bounded size, no YAML aliases or object tags, one-line errors."""

import resource
import subprocess
import sys
import textwrap

import pytest

from napari_seg._config_file import read_mapping
from napari_seg.limits import MAX_CONFIG_BYTES


def _laughs() -> str:
    """A "billion laughs" YAML value: nine levels of nine aliases of the level below."""
    levels = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        levels.append(f"&{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "[" + ", ".join(levels) + "]"


LAUGHS_CHILD = textwrap.dedent(
    """
    import sys
    from napari_seg.refine import RefineConfig
    from napari_seg.training import TrainingConfig
    kind, path = sys.argv[1:]
    try:
        (TrainingConfig if kind == "train" else RefineConfig).load(path)
    except (ValueError, TypeError) as exc:
        print(str(exc)[:300])
    """
)


@pytest.mark.parametrize("kind", ["train", "refine"])
def test_yaml_alias_bombs_are_refused_at_once(tmp_path, kind):
    path = tmp_path / "bomb.yaml"
    if kind == "train":  # inside a known key: there is no unknown key to stop at
        path.write_text(f"class_names: {_laughs()}\n")
    else:
        path.write_text(f"steps:\n  - op: opening\n    params: {{radius: {_laughs()}}}\n")
    limit = 2000 * 2**20
    result = subprocess.run(
        [sys.executable, "-c", LAUGHS_CHILD, kind, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-1000:]
    assert "anchors and aliases" in result.stdout
    assert str(path) in result.stdout


def test_python_tags_and_huge_or_deep_files_are_refused(tmp_path):
    tagged = tmp_path / "tag.yaml"
    tagged.write_text("loss: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_mapping(tagged)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ValueError, match="larger than 16 MiB"):
        read_mapping(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json nests too deeply"):
        read_mapping(deep)
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x80\x04\x95 pickle")
    with pytest.raises(ValueError, match="not a text file"):
        read_mapping(binary)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_mapping(tmp_path)


def test_yaml_errors_are_one_line_with_their_position(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML") as caught:
        read_mapping(broken)
    message = str(caught.value)
    assert "\n" not in message
    assert "(line 2, column 1)" in message


def test_one_line_makes_a_message_of_several_lines_one_line():
    from napari_seg.limits import one_line

    several = "a problem\n  in 'x', line 1:\n    text\n    ^"
    assert one_line(several) == "a problem in 'x', line 1: text ^"
    assert one_line("already one line,  spaces kept") == "already one line,  spaces kept"


def test_an_unknown_setting_is_named_with_the_closest_known_one(tmp_path):
    """A config file's typo ("tiles") was named with the whole list of settings; the
    closest one is named too, as for the command line's unknown options."""
    from napari_seg.inference import PredictConfig

    (tmp_path / "c.yaml").write_text("tiles: 256\nzzzz: 1\n")
    with pytest.raises(ValueError, match=r"\['tiles', 'zzzz'\] \(tiles: did you mean tile\?\);"):
        PredictConfig.load(tmp_path / "c.yaml")


def test_keyword_settings_of_every_job_name_a_typo_as_files_do():
    """``predict(model, image, tiles=256)``, ``evaluate(pred, gt, surfac=True)``: keyword
    settings go through ``with_``, which raised dataclasses' "unexpected keyword
    argument" without the setting meant."""
    import numpy as np

    from napari_seg.inference import PredictConfig
    from napari_seg.metrics import EvaluateConfig, evaluate
    from napari_seg.refine import RefineConfig
    from napari_seg.training import TrainingConfig

    for config, typo, meant in [
        (PredictConfig(), "tiles", "tile"),
        (EvaluateConfig(), "surfac", "surface"),
        (TrainingConfig(), "epoch", "epochs"),
        (RefineConfig(), "step", "steps"),
    ]:
        with pytest.raises(TypeError, match=rf"\['{typo}'\] \({typo}: did you mean {meant}\?\)"):
            config.with_(**{typo: 1})
    labels = np.array([[0, 1], [1, 1]])
    assert evaluate(labels, labels, mode="instance").config.mode == "instance"
    with pytest.raises(TypeError, match="did you mean surface"):
        evaluate(labels, labels, surfac=True)


def test_every_job_takes_its_settings_as_a_dict_too():
    """``predict(model, image, {"tile": 32})`` failed inside with "'dict' object has no
    attribute 'channel_axis'" (``evaluate`` and ``refine`` the same way): a dict of
    settings, as a pipeline file holds them, is read as the file is (its typos named);
    anything else is a TypeError that says what is taken."""
    import numpy as np

    from napari_seg.inference import PredictConfig, predict
    from napari_seg.metrics import evaluate
    from napari_seg.models import ModelSpec, create_model
    from napari_seg.refine import RefineConfig, RefineStep, refine
    from napari_seg.training import TrainingConfig

    model = create_model(ModelSpec("unet", 1, 2, options={"depth": 2, "base_width": 4}))
    image = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    settings = {"tile": 32, "overlap": 8}
    np.testing.assert_array_equal(
        predict(model, image, settings).labels,
        predict(model, image, PredictConfig(tile=32, overlap=8)).labels,
    )
    assert predict(model, image, settings, overlap=16).overlap == 16  # keywords win
    with pytest.raises(ValueError, match=r"\(tiel: did you mean tile\?\)"):
        predict(model, image, {"tiel": 32})
    with pytest.raises(
        TypeError, match="config must be a PredictConfig or a dict of its settings, got str"
    ):
        predict(model, image, "tile=32")
    labels = np.zeros((12, 12), np.uint8)
    labels[2:9, 2:9], labels[0, 11] = 1, 1
    assert evaluate(labels, labels, {"mode": "instance"}).config.mode == "instance"
    job = {"steps": [{"op": "remove_small_objects", "params": {"min_size": 4}}]}
    expected = refine(
        labels, RefineConfig(steps=(RefineStep("remove_small_objects", {"min_size": 4}),))
    )
    np.testing.assert_array_equal(refine(labels, job), expected)
    assert expected[0, 11] == 0
    assert TrainingConfig.given({"epochs": 3}, batch_size=2) == TrainingConfig(
        epochs=3, batch_size=2
    )
    with pytest.raises(TypeError, match="config must be a TrainingConfig"):
        TrainingConfig.given(PredictConfig())


def test_other_libraries_names_of_our_settings_are_hinted_as_ours():
    """MONAI's ``roi_size`` was hinted as "did you mean noise?" (by spelling) and
    PyTorch's ``lr`` not at all: names other libraries give our settings are named
    with ours, the prediction's or the training's as the job has them, and no
    spelling guess is made for them where the job has no such setting."""
    from napari_seg.inference import PredictConfig
    from napari_seg.metrics import EvaluateConfig
    from napari_seg.training import TrainingConfig

    for config, word, ours in [
        (PredictConfig(), "roi_size", "tile"),
        (PredictConfig(), "sw_batch_size", "batch_size"),
        (PredictConfig(), "mode", "blending"),
        (PredictConfig(), "patch_size", "tile"),  # not batch_size, as spelling guessed
        (TrainingConfig(), "pixdim", "spacing"),  # MONAI's Spacing(pixdim=...), not dims
        (TrainingConfig(), "roi_size", "patch_size"),
        (TrainingConfig(), "lr", "learning_rate"),
        (TrainingConfig(), "max_epochs", "epochs"),
        (TrainingConfig(), "out_channels", "num_classes"),
    ]:
        with pytest.raises(TypeError, match=rf"\({word}: did you mean {ours}\?\)"):
            config.with_(**{word: 1})
    with pytest.raises(TypeError, match=r"\['roi_size'\]; known") as caught:
        EvaluateConfig().with_(roi_size=1)
    assert "did you mean" not in str(caught.value)


def test_lists_given_for_a_job_s_tuples_are_taken_by_every_job():
    """``evaluate(pred, gt, ignore_labels=[0])`` said "ignore_labels must be a list of
    label ids, got [0]", and ``PredictConfig(spacing=[1.0, 1.0])`` "spacing must hold 2
    to 3 sizes, got [1.0, 1.0]": only TrainingConfig turned lists into the tuples its
    fields hold. Evaluate's class names may be listed in id order, as --class-names
    and a model's spec list them."""
    from napari_seg.inference import PredictConfig
    from napari_seg.metrics import EvaluateConfig
    from napari_seg.refine import RefineConfig, RefineStep
    from napari_seg.training import TrainingConfig

    assert PredictConfig(spacing=[1.0, 2.0], axis=[0]).validate().spacing == (1.0, 2.0)
    assert EvaluateConfig(ignore_labels=[0]).validate().ignore_labels == (0,)
    surface = EvaluateConfig(surface=True, spacing=[1.0, 2.0]).validate()
    assert surface.spacing == (1.0, 2.0)
    assert EvaluateConfig(mode="instance", thresholds=[0.5]).validate().thresholds == (0.5,)
    named = EvaluateConfig(class_names=["background", "cell"]).validate()
    assert named.class_names == {0: "background", 1: "cell"}
    assert EvaluateConfig.from_json(named.to_json()) == named
    with pytest.raises(TypeError, match=r"or list the names of ids 0, 1, \.\.\. in order"):
        EvaluateConfig(class_names=[1, 2]).validate()
    steps = RefineConfig(steps=[RefineStep("opening", {"radius": 1})]).validate().steps
    assert isinstance(steps, tuple)
    assert TrainingConfig(ignore_labels=[255], class_names=["a", "b"]).validate().ignore_labels
