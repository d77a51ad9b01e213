"""Model files made by an attacker or a broken program: each is refused fast, in bounded
memory, with one error that names the file and the problem."""

import json
import math
import resource
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from napari_seg.cli import main
from napari_seg.models import ModelFileError, ModelSpec, create_model, load_model, save_model
from napari_seg.models.model_file import METADATA_KEY, read_model_card, tensors_digest

#: Memory a hostile-file check may use in a child process (torch alone takes ~500 MiB).
CHILD_DATA_MIB = 2000


@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, options={"depth": 2, "base_width": 4})
    return save_model(create_model(spec), tmp_path / "good.safetensors")


def craft(source, path, *, card=None, spec=None, tensors=None, raw_card=None):
    """A model file like ``source`` with card/spec keys replaced and a valid checksum."""
    data = load_file(str(source))
    if tensors is not None:
        data = tensors(data)
    full = read_model_card(source)
    full.update(card or {})
    full["spec"] = {**full["spec"], **(spec or {})}
    full["tensors_sha256"] = tensors_digest(data)
    text = raw_card if raw_card is not None else json.dumps(full)
    save_file(data, str(path), metadata={METADATA_KEY: text})
    return path


def run_bounded(code: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a child limited to ``CHILD_DATA_MIB`` of heap; fail the test on timeout."""
    limit = CHILD_DATA_MIB * 2**20
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_DATA, (limit, limit)),
        check=False,
    )


def test_a_billion_classes_fail_at_once_in_bounded_memory(good, tmp_path):
    bomb = craft(good, tmp_path / "bomb.safetensors", spec={"num_classes": 10**9})
    result = run_bounded(
        f"""
        from napari_seg.models import ModelFileError, load_model
        from napari_seg.training import TrainingConfig, train
        try:
            load_model({str(bomb)!r})
        except ModelFileError as exc:
            print("load:", exc)
        import numpy as np
        image, labels = np.zeros((64, 64), np.float32), np.zeros((64, 64), np.uint8)
        labels[:8] = 1
        try:
            train((image, labels), TrainingConfig(from_model={str(bomb)!r}, epochs=1))
        except ModelFileError as exc:
            print("train:", exc)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "num_classes must be at most 1024" in line
        assert "bomb.safetensors" in line


def test_a_huge_sparse_file_is_refused_without_reading_it(good, tmp_path):
    """30 GB on disk (sparse): a header that declares a 30 GB tensor beside the model."""
    header_tensors = load_file(str(good))
    card = read_model_card(good)
    big = tmp_path / "sparse.safetensors"
    table, offset = {}, 0
    for name in sorted(header_tensors):
        t = header_tensors[name]
        size = t.numel() * t.element_size()
        table[name] = {
            "dtype": {torch.float32: "F32", torch.int64: "I64"}[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    huge = 30 * 2**30 // 4
    table["optimizer.0.exp_avg"] = {
        "dtype": "F32",
        "shape": [huge],
        "data_offsets": [offset, offset + 4 * huge],
    }
    table["__metadata__"] = {METADATA_KEY: json.dumps(card)}
    header = json.dumps(table).encode()
    with open(big, "wb") as handle:
        handle.write(len(header).to_bytes(8, "little") + header)
        handle.truncate(8 + len(header) + offset + 4 * huge)  # sparse: no disk used
    result = run_bounded(
        f"""
        from napari_seg.models import ModelFileError, load_model
        try:
            load_model({str(big)!r})
        except ModelFileError as exc:
            print(exc)
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bytes of tensors beside the model's" in result.stdout


def test_a_header_longer_than_the_file_or_the_limit_is_refused(good, tmp_path):
    data = bytearray(good.read_bytes())
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes((2**40).to_bytes(8, "little") + bytes(data[8:]))
    with pytest.raises(ModelFileError, match=r"corrupt or truncated.*header declares"):
        load_model(lying)


@pytest.mark.parametrize(
    ("raw_card", "message"),
    [
        ("[1, 2, 3]", "the model card is a JSON list, not an object"),
        ("42", "the model card is a JSON int, not an object"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ],
)
def test_cards_that_are_not_objects(good, tmp_path, capsys, raw_card, message):
    bad = craft(good, tmp_path / "bad.safetensors", raw_card=raw_card)
    with pytest.raises(ModelFileError, match=message):
        load_model(bad)
    for argv in (["info", str(bad)], ["predict", "--model", str(bad), "--output", "o", "x.tif"]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert "bad.safetensors" in err[0]
        assert message in err[0]


def test_a_format_version_that_is_not_a_number_names_the_file(good, tmp_path):
    bad = craft(good, tmp_path / "v.safetensors", card={"format_version": "abc"})
    with pytest.raises(ModelFileError, match=r"v\.safetensors: model card format_version must"):
        load_model(bad)


def test_a_folder_given_as_the_model_is_called_a_folder(tmp_path, capsys):
    folder = tmp_path / "models.safetensors"
    folder.mkdir()
    assert main(["info", str(folder)]) == 1
    assert "is a folder, not a model file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("normalization", "message"),
    [
        ({"method": "meanstd", "mean": [math.nan], "std": [1.0]}, "finite number"),
        ({"method": "meanstd", "mean": [0.0], "std": [math.inf]}, "finite number"),
        ({"method": "percentile", "low": math.nan, "high": 99.0}, "finite number"),
    ],
)
def test_non_finite_normalisation_is_refused(good, tmp_path, normalization, message):
    bad = craft(good, tmp_path / "n.safetensors", spec={"normalization": normalization})
    with pytest.raises(ModelFileError, match=message):
        load_model(bad)


def test_nan_weights_are_refused(good, tmp_path):
    def poison(tensors):
        key = next(k for k, v in sorted(tensors.items()) if v.is_floating_point())
        tensors[key] = torch.full_like(tensors[key], math.nan)
        return tensors

    bad = craft(good, tmp_path / "nan.safetensors", tensors=poison)
    with pytest.raises(ModelFileError, match="holds NaN or infinite values"):
        load_model(bad)


def test_a_string_where_class_names_belong_is_refused(good, tmp_path, capsys):
    bad = craft(good, tmp_path / "s.safetensors", spec={"num_classes": 3, "class_names": "abc"})
    with pytest.raises(ModelFileError, match="class_names must be a list of names"):
        load_model(bad)
    assert main(["info", str(bad)]) == 1  # info validates before it prints
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "class_names must be a list of names" in captured.err


def test_the_spec_alone_is_read_from_the_header_with_the_same_checks(good, tmp_path):
    """``read_model_spec`` (settings decided before loading) reads no tensor: the spec
    of a file whose weights are NaN comes back, while loading it is refused; a file
    that is not a model, or a bad spec, fails as loading does."""
    from napari_seg.models import read_model_spec

    assert read_model_spec(good) == load_model(good).spec
    bad = craft(good, tmp_path / "nan.safetensors",
                tensors=lambda d: {k: v.fill_(math.nan) if v.is_floating_point() else v
                                   for k, v in d.items()})  # fmt: skip
    assert read_model_spec(bad) == load_model(good).spec
    with pytest.raises(ModelFileError):
        load_model(bad)
    (tmp_path / "pickle.pt").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ModelFileError, match="refused unread"):
        read_model_spec(tmp_path / "pickle.pt")
    broken = craft(good, tmp_path / "spec.safetensors", spec={"num_classes": "three"})
    with pytest.raises(ModelFileError, match="invalid model spec"):
        read_model_spec(broken)


def test_a_header_whose_length_begins_like_a_pickle_is_still_a_model(good, tmp_path):
    """A safetensors file starts with its header's length, little-endian: a length of
    0x...0480 starts the file with 80 04, a pickle's protocol-4 opening, and such a
    model file (one saved file in about 11,000 by header length; a 3D pixel
    classifier's card met one) was refused as "a pickle-based PyTorch file"."""
    raw = good.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + n].rstrip(b" ")
    length = 0x10480  # safetensors allows a header padded with spaces
    assert len(header) < length
    padded = tmp_path / "padded.safetensors"
    padded.write_bytes(
        length.to_bytes(8, "little") + header + b" " * (length - len(header)) + raw[8 + n :]
    )
    assert padded.read_bytes()[:2] == b"\x80\x04"
    model = load_model(padded)
    assert model.spec == load_model(good).spec
    for name, value in load_model(good).state_dict().items():
        assert torch.equal(model.state_dict()[name], value)
