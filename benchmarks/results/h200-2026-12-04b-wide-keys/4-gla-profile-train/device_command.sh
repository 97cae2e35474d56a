#!/usr/bin/env bash
# Session 13, call 4: where GLA's time goes at the fla-1.3B shape with the new defaults; training throughput of the
# 340M CCQ-GDN (and GDN) eager, then compiled (last session's compiled 71.6k tok/s against 87.8k-104.2k earlier).
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step prof-gla 60 python3 benchmarks/profile_gpu.py --ops gla --shape 8,4096,4,256,512 --no-decode --no-train --out $S/prof-gla
step train-eager 170 python3 benchmarks/train_throughput.py --variants ccq-gdn,gdn --new-tokens 64 --out $S/train-eager
step train-compiled 200 python3 benchmarks/train_throughput.py --compile --variants ccq-gdn --new-tokens 64 --out $S/train-compiled
echo "suite done" >> $S/gpu.txt
