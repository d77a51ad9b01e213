"""The examples of docs/scale-out.md: the LocalCluster code runs as written, and the
SLURM file builds a SLURMCluster with its settings."""

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_seg.models import ModelSpec, create_model, save_model
from napari_seg.sample_data import cells_2d

pytest.importorskip("distributed")
pytest.importorskip("ome_zarr_models")
zarr = pytest.importorskip("zarr")

DOC = Path(__file__).parents[2] / "docs" / "scale-out.md"


def _block(kind: str) -> str:
    (code,) = re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)
    return code


def test_the_local_cluster_example_runs(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    spec = ModelSpec("unet", 1, 3, encoder="classic", options={"depth": 2, "base_width": 8})
    model = create_model(spec)
    save_model(model, tmp_path / "cells.safetensors")
    image = cells_2d((700, 600), seed=3)[0]
    tifffile.imwrite(tmp_path / "cells.tif", image)
    monkeypatch.chdir(tmp_path)
    exec(compile(_block("python"), str(DOC), "exec"), {})
    printed = capsys.readouterr().out
    assert "dashboard: http" in printed
    assert "cells_labels.ome.zarr 2 levels" in printed  # 700 -> 350 px, chunks of 512
    labels = zarr.open_group(str(tmp_path / "cells_labels.ome.zarr"), mode="r")["0"][:]
    assert labels.shape == image.shape
    assert len(np.unique(labels)) >= 1


def test_the_slurm_example_configures_a_slurm_cluster(tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue")
    import dask
    import dask_jobqueue

    from napari_seg.scaleout import cluster

    made = {}

    class FakeSLURM:  # no queue here: record what napari-seg asks for
        def __init__(self):
            made["queue"] = dask.config.get("jobqueue.slurm.queue")
            made["gres"] = dask.config.get("jobqueue.slurm.job_extra_directives")

        def scale(self, jobs):
            made["jobs"] = jobs

    monkeypatch.setattr(dask_jobqueue, "SLURMCluster", FakeSLURM)
    (tmp_path / "slurm.yaml").write_text(_block("yaml"))
    assert isinstance(cluster._jobqueue_cluster(tmp_path / "slurm.yaml"), FakeSLURM)
    assert made == {"queue": "gpu", "gres": ["--gres=gpu:1"], "jobs": 4}
