"""Scale-out: block-wise prediction on a Dask cluster into OME-Zarr.

- :mod:`.run`: the job (plan, run blocks here or on a cluster, finish);
- :mod:`.records`: per-block records for resume;
- :mod:`.omezarr`: NGFF 0.4 label images, validated after writing;
- :mod:`.cluster`: LocalCluster, scheduler address or dask-jobqueue file.
"""
