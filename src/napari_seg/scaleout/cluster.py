"""Connecting to the Dask cluster a job runs on: a LocalCluster, a scheduler's
address, or an HPC queue described by a dask-jobqueue YAML file."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from .._extras import MissingExtraError
from ..limits import MAX_JOBS, MAX_WORKERS, brief

#: dask-jobqueue's cluster class for each ``jobqueue:`` key of a config file.
JOBQUEUE_CLASSES = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "lsf": "LSFCluster",
    "sge": "SGECluster",
    "htcondor": "HTCondorCluster",
    "moab": "MoabCluster",
    "oar": "OARCluster",
}


def connect(
    cluster: str | None = None,
    *,
    config_file: str | os.PathLike | None = None,
    quiet: bool = False,
) -> Any:
    """A ``distributed.Client`` for ``cluster`` or ``config_file``.

    Parameters
    ----------
    cluster : str, optional
        ``"local"`` (a LocalCluster of one process per core, one thread each),
        ``"local:N"`` (N processes), or a scheduler address such as
        ``tcp://host:8786``.
    config_file : path, optional
        A dask-jobqueue YAML file (``jobqueue: {slurm: {cores: ..., memory: ...}}``);
        ``napari-seg: {jobs: N}`` in it sets how many jobs to submit (default 1).
    quiet : bool
        A LocalCluster started here logs critical messages only (the command line
        without ``--verbose``): its workers log a traceback when their heartbeat
        meets a scheduler that is closing, as it is after Ctrl+C. Errors of the
        job itself still reach the caller as exceptions. Default: dask's warnings.

    Returns
    -------
    distributed.Client
        Not made the process's default: napari-seg hands it its blocks itself, and
        the rest of the process (napari reading a lazy layer, a user's
        ``dask.compute``) keeps its own scheduler while a run is on and after it,
        however clients are closed.

    Raises
    ------
    ValueError
        For a malformed ``cluster`` or a config file without a known scheduler.
    MissingExtraError
        When distributed (or dask-jobqueue for a config file) is not installed,
        naming the extra to install.
    OSError
        When no scheduler answers at the address, naming it.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise MissingExtraError("running on a cluster", "distributed", "cluster") from exc
    if config_file is not None:
        return Client(_jobqueue_cluster(Path(config_file)), set_as_default=False)
    if cluster is None:
        raise ValueError("give a cluster ('local', 'local:N' or an address) or a config file")
    if cluster == "local" or cluster.startswith("local:"):
        count = cluster.partition(":")[2]
        if count and not (count.isdigit() and 1 <= int(count) <= MAX_WORKERS):
            raise ValueError(
                f"--cluster local:N needs a whole number of workers from 1 to {MAX_WORKERS}, "
                f"got {cluster!r}"
            )
        workers = int(count) if count else os.cpu_count() or 1
        level = logging.CRITICAL if quiet else logging.WARNING
        return Client(local_cluster(workers, silence_logs=level), set_as_default=False)
    if "://" not in cluster and ":" not in cluster:
        raise ValueError(
            f"--cluster must be 'local', 'local:N' or a scheduler address "
            f"(tcp://host:port), got {cluster!r}"
        )
    if cluster.lower().startswith(("http://", "https://")):
        raise ValueError(
            f"{cluster} is a web address (the Dask dashboard's, port 8787 by default); "
            "give the scheduler's, tcp://host:8786 (the dashboard's Info page shows it)"
        )
    return _client_at(cluster)


#: Seconds past distributed's own connect timeout before a scheduler that has not
#: answered is given up (a server that takes the connection but never answers, as a
#: web server does, held distributed's handshake for ever).
HANDSHAKE_GRACE_S = 5.0


def _client_at(address: str) -> Any:
    """``Client(address)``, failing with an OSError that names the address and what
    to do when nothing answers there, something else does, or nothing answers in time."""
    import threading

    import dask
    from dask.utils import parse_timedelta
    from distributed import Client

    wait = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["client"] = Client(address, timeout=wait, set_as_default=False)
        except Exception as exc:  # handed to the caller's thread
            done["error"] = exc

    thread = threading.Thread(target=run, name="napari-seg-connect", daemon=True)
    thread.start()
    thread.join(wait + HANDSHAKE_GRACE_S)
    advice = (
        "start one there (`dask scheduler`, or your cluster's), check the address and "
        "port (the scheduler's, 8786 by default, not the dashboard's 8787), or use "
        "--cluster local"
    )
    if thread.is_alive():
        raise OSError(
            f"no Dask scheduler answered at {address} within {wait + HANDSHAKE_GRACE_S:g} s: "
            f"something takes the connection but does not answer as a scheduler; {advice}"
        )
    error = done.get("error")
    if isinstance(error, OSError):  # "Timed out trying to connect to ... after 30 s"
        raise OSError(f"no Dask scheduler answered at {address} ({error}): {advice}") from None
    if error is not None:  # a reply that is no Dask message (e.g. a 3 EiB "frame")
        raise OSError(
            f"the server at {address} does not answer as a Dask scheduler "
            f"({type(error).__name__}: {str(error)[:200]}); {advice}"
        ) from None
    return done["client"]


def local_cluster(workers: int, *, threads: int | None = None, **kwargs: Any) -> Any:
    """A LocalCluster of ``workers`` processes, one Dask thread each, set up for torch.

    Parameters
    ----------
    workers : int
    threads : int, optional
        CPU threads of each worker's torch (and OpenMP, MKL, OpenBLAS); default:
        the cores shared out, at least 1.
    **kwargs
        More ``LocalCluster`` arguments (``dashboard_address``...).

    Returns
    -------
    distributed.LocalCluster

    Notes
    -----
    distributed's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` and
    ``OMP_NUM_THREADS=1``. Setting the trim threshold turns off glibc's adaptive
    mmap threshold, so torch's large activations are mapped and unmapped at every
    forward; with both, a U-Net forward on the CPU took 1.5 to 2 times as long in a
    worker as in a plain process (measured here: 0.46 s against 0.66 to 0.99 s).
    Both are set before the worker process starts, so they are changed here, for
    this cluster's nannies only.
    """
    import dask.config
    from distributed import LocalCluster

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    environ: dict[str, str | None] = {"MALLOC_TRIM_THRESHOLD_": None}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environ[name] = str(threads)
    key = "distributed.nanny.pre-spawn-environ"
    with dask.config.set({f"{key}.{name}": value for name, value in environ.items()}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, **kwargs)


def _jobqueue_cluster(path: Path) -> Any:
    import dask.config

    from .._config_file import read_mapping

    # The project's YAML rules: size bound, no anchors/aliases, no Python tags,
    # one-line errors.
    settings = read_mapping(path, yaml_format=True) or {}
    queues: Any = settings.get("jobqueue") if isinstance(settings, dict) else None
    kinds = [k for k in queues if k in JOBQUEUE_CLASSES] if isinstance(queues, dict) else []
    if len(kinds) != 1 or not isinstance(queues[kinds[0]], dict):
        found = sorted(map(str, queues)) if isinstance(queues, dict) else brief(queues)
        raise ValueError(
            f"{path}: expected one scheduler under 'jobqueue:' ({', '.join(JOBQUEUE_CLASSES)}) "
            f"with its settings, got {found}"
        )
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise MissingExtraError("a cluster config file", "dask-jobqueue", "cluster") from exc
    jobs = _jobs(settings.get("napari-seg"), path)
    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[kinds[0]])
    # Jobs are submitted in the background; without the queue's command they never
    # start and the run would wait for workers for ever.
    command = getattr(getattr(cls, "job_cls", None), "submit_command", None)
    if command and shutil.which(command.split()[0]) is None:
        raise ValueError(
            f"{path}: {kinds[0]} submits jobs with {command!r}, which is not on this "
            "machine's PATH; run napari-seg on the cluster's login node"
        )
    dask.config.update(dask.config.config, {"jobqueue": queues}, priority="new")
    cluster = cls()
    cluster.scale(jobs=jobs)
    return cluster


def _jobs(section: Any, path: Path) -> int:
    """The ``napari-seg: {jobs: N}`` of a cluster config file (default 1)."""
    jobs = (section or {}).get("jobs", 1) if isinstance(section, dict | None) else None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise ValueError(
            f"{path}: 'napari-seg: jobs' must be a whole number from 1 to {MAX_JOBS}, "
            f"got {brief(jobs if jobs is not None else section)}"
        )
    return jobs
