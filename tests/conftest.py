import os

import pytest

# Never reach for the network from tests (pretrained weights come from files the tests write).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is available here")
    for item in items:
        if item.get_closest_marker("gpu") is not None and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # napari's make_napari_viewer fixture reads item.rep_call to decide whether
    # to check for leaked widgets; napari's own conftest sets it, so do we.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
