#!/usr/bin/env bash
# Session 13, call 6: training with forward+backward replayed as one CUDA graph (the eager step is host-bound:
# 162 ms of kernels in a ~300 ms step in call 5): its GPU test, then train_throughput.py eager and graphed
# (decode at 256 new tokens, as before), then the eager step's profile with its wall time.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step graph_test 90 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider tests/test_train_throughput_script.py
step train 250 python3 benchmarks/train_throughput.py --cuda-graph --variants ccq-gdn,gdn --out $S/train
step prof-train 70 python3 benchmarks/profile_gpu.py --no-decode --ops '' --out $S/prof-train
echo "suite done" >> $S/gpu.txt
