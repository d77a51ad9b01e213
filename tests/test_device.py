import re

import pytest
import torch

from napari_seg import DeviceError, describe_device, list_devices, resolve_device


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected
    assert "cpu:" in describe_device("cpu")
    assert re.search(r", \d+ threads?", describe_device("cpu"))
    assert list_devices()[-1].id == "cpu"


@pytest.mark.parametrize("name", ["cpu:0", " CPU:0", torch.device("cpu", 0)])
def test_cpu_as_torch_writes_it(name):
    # torch names the one CPU "cpu:0" too (str(torch.device("cpu", 0))): the same device
    assert resolve_device(name) == torch.device("cpu")


def test_mps_zero_is_mps_and_other_indices_are_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps:0") == torch.device("mps")
    for name in ("cpu:1", "mps:2"):
        with pytest.raises(DeviceError, match=rf"there is one .* device.*got '{name}'"):
            resolve_device(name)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "", "cpu:", "cpu:x"])
def test_unknown_names(name):
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(name)


def test_unavailable_cuda_and_mps_say_what_exists(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"CUDA was requested.*available: cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match=r"MPS .* not available.*available: cpu"):
        resolve_device("mps")
    assert resolve_device("auto") == torch.device("cpu")


class _Props:
    name = "Fake GPU"


def test_auto_prefers_cuda_and_checks_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: _Props())
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (3 * 2**30, 8 * 2**30))
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"CUDA device 2 does not exist.*has 2"):
        resolve_device("cuda:2")
    assert describe_device("cuda:1") == "cuda:1: Fake GPU, 8.0 GiB (3.0 GiB free)"
    assert [d.id for d in list_devices()][:2] == ["cuda:0", "cuda:1"]


@pytest.mark.gpu
def test_real_cuda_device():
    device = resolve_device("cuda")
    assert device.type == "cuda"
    assert "GiB" in describe_device(device)


@pytest.mark.parametrize(("threads", "said"), [(1, ", 1 thread,"), (3, ", 3 threads,")])
def test_a_cpu_job_is_described_with_its_own_thread_count(threads, said):
    from napari_seg.arrays.runtime import Runtime

    assert said in Runtime.resolve("cpu", "fp32", threads=threads).description


def test_release_memory_collects_garbage_only_when_asked(monkeypatch):
    """A full gc.collect() holds the interpreter (0.1 s in a benchmark process on the
    H200 machine, longer in napari): predict and training end without one; only the
    out-of-memory back-off, whose traceback frames hold tensors, asks for it."""
    import gc

    from napari_seg._device import release_memory

    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append("gc") or 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty"))
    release_memory("cpu", collect=True)
    assert calls == []
    release_memory(torch.device("cuda", 0))
    assert calls == ["empty"]
    release_memory("cuda:0", collect=True)
    assert calls == ["empty", "gc", "empty"]
