"""The README's Python example runs as written (with small inputs and a short budget)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(text: str, opening: str) -> str:
    found = re.findall(re.escape(opening) + r"\n(.*?)```", text, re.S)
    assert len(found) == 1, f"expected one {opening!r} block in README.md, found {len(found)}"
    return found[0]


def _inputs() -> dict:
    """The names the example leaves to the reader, as small arrays."""
    from napari_seg import refine
    from napari_seg.sample_data import CLASS_NAMES, cells_2d, cells_3d

    image, gt = (a[:192, :192] for a in cells_2d())
    scribbles = np.zeros_like(gt)
    scribbles[::7, ::7] = gt[::7, ::7] + 1  # label0="unlabelled": 0 is unpainted
    pred = gt.copy()
    pred[:24] = 0
    objects = refine.number_objects(gt, CLASS_NAMES, background=0)
    outlines = np.zeros((17, 48, 48), np.uint8)
    outlines[::8, 12:30, 12:30] = 1
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet((1.0,) * 3, size=gt.shape).transpose(2, 0, 1)
    return {
        "image": image,
        "stack": cells_3d()[0][:2, :96, :96],
        "gt": gt,
        "pred": pred,
        "labels": gt,
        "scribbles": scribbles,
        "pred_objects": objects,
        "gt_objects": objects,
        "names": ["a"],
        "pairs": [(pred, gt)],
        "probabilities": probabilities.astype(np.float32),
        "outlines": outlines,
    }


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    import nibabel as nib

    from napari_seg.models import ModelSpec, create_model, save_model
    from napari_seg.sample_data import cells_3d

    text = README.read_text(encoding="utf-8")
    code = _block(text, "```python")
    assert "minutes=2" in code  # shortened below; a changed example must change this test
    code = code.replace("minutes=2", "minutes=0.03")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clean.yaml").write_text(_block(text, "```yaml\n# clean.yaml"))
    for seed in (0, 1):  # the ensemble's members
        spec = ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 8})
        save_model(create_model(spec), f"seed{seed}.safetensors")
    scope = _inputs()
    brain, reference = cells_3d((20, 48, 48), seed=3)
    affine = np.diag([0.9, 0.9, 1.5, 1.0])  # RAS, stored (x, y, z)
    nib.save(nib.Nifti1Image(brain.transpose(2, 1, 0).copy(), affine), "brain.nii.gz")
    scope["reference"] = reference[:, ::-1, ::-1]  # the file read in LPS: x and y flipped
    exec(compile(code, str(README), "exec"), scope)  # the project's own README
    assert scope["result"].labels.shape == scope["image"].shape
    assert scope["trained"].best_path == Path("model.safetensors")
    assert (tmp_path / "model.safetensors").is_file()
    assert scope["objects"].shape == scope["image"].shape  # of random networks: maybe empty
    assert scope["clean"].shape == scope["labels"].shape
    assert scope["filled"][4].any()  # a slice between the drawn ones was filled
    assert "EpochEnd(" in capsys.readouterr().out  # the fine-tuning loop's events
    written = nib.load(tmp_path / "brain_labels.nii.gz")  # on the source's grid
    assert written.shape == brain.transpose(2, 1, 0).shape
    np.testing.assert_allclose(written.affine, affine)
    np.testing.assert_array_equal(scope["volume"], brain[:, ::-1, ::-1])  # as the reference
    assert scope["found"].labels.shape == brain.shape
    assert len(scope["surface"].spacing) == 3
    assert scope["shown"].labels.shape == scope["image"].shape
    assert scope["shown"].fit_seconds > 0


def _documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``$ napari-seg ...`` line of the README and docs/ (continuation lines
    joined, comments dropped), as ``(where, argv)``."""
    import shlex

    found = []
    for path in [README, *sorted((README.parent / "docs").glob("*.md"))]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.startswith("$ napari-seg "):
                continue
            text, k = line[2:], number
            while text.endswith("\\"):
                text = text[:-1] + " " + lines[k].strip()
                k += 1
            argv = shlex.split(text, comments=True)[1:]
            found.append((f"{path.name}:{number}", argv))
    return found


def test_documented_commands_are_ones_the_parser_takes(capsys):
    """The commands the README and docs/ show parse as written (options renamed or
    removed since would leave users with "unrecognized arguments")."""
    import pytest

    from napari_seg.cli import build_parser

    commands = _documented_commands()
    assert len(commands) >= 30  # the README's examples are found
    parser = build_parser()
    for where, argv in commands:
        try:
            _args, extra = parser.parse_known_args(argv)
        except SystemExit:
            pytest.fail(f"{where}: napari-seg {' '.join(argv)}: {capsys.readouterr().err}")
        assert extra == [], f"{where}: unknown {extra}"
