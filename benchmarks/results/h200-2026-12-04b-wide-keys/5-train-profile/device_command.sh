#!/usr/bin/env bash
# Session 13, call 5: where the 340M CCQ-GDN training step's time goes, eager and under model.compile()
# (training at 52.7k-54.5k tok/s in call 4, 83k-104k in earlier sessions).
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
nproc >> $S/gpu.txt; uptime >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step prof-train-eager 120 python3 benchmarks/profile_gpu.py --no-decode --ops '' --out $S/prof-train-eager
step prof-train-compiled 200 python3 benchmarks/profile_gpu.py --no-decode --ops '' --compile --out $S/prof-train-compiled
echo "suite done" >> $S/gpu.txt
