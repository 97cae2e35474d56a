#!/usr/bin/env bash
# Session 12, call 1: where GDN loses at B2 T16K (per-kernel profile beside fla's, and at B4 T8K / B8 T4K for
# comparison); the GDN state kernels' settings at B2 T16K; Q-Delta's wy_A at 2 and 3 stages (repeatability, op A/B);
# GLA's fp32-state forward (the backward's) alone; training throughput under model.compile().
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step warm 150 python3 benchmarks/warm_compile.py --jobs 4 --ops fla_chunk_gated_delta_rule,gated_delta_rule,qdelta_rule &
step rep-a2 60 env LINMEM_GDN_A_STAGES=2 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule --out $S/rep-a2
step rep-a3 60 env LINMEM_GDN_A_STAGES=3 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule --out $S/rep-a3
wait
for shape in 2,16384 4,8192 8,4096; do
  step prof-$shape 90 python3 benchmarks/profile_gpu.py --ops gated_delta_rule,qdelta_rule,fla_chunk_gated_delta_rule --shape $shape --no-decode --no-train --out $S/prof-$shape
done
step ab-qdelta 90 python3 benchmarks/launch_ab.py --ops qdelta_rule --seq-lens 4096 --variants "a2:LINMEM_GDN_A_STAGES=2;a3:LINMEM_GDN_A_STAGES=3" --out $S/ab-qdelta
step sweep-gdn16k 150 python3 benchmarks/kernel_settings.py --jobs 12 --kernels state_fwd,state_bwd --shape 2,16384 --out $S/sweep-gdn16k --exports $S/sweep-gdn16k-exports.sh
step sweep-glafp32 100 python3 benchmarks/kernel_settings.py --jobs 12 --kernels gla_state_fwd_fp32 --shape 8,4096 --out $S/sweep-glafp32 --exports $S/sweep-glafp32-exports.sh
step train 150 python3 benchmarks/train_throughput.py --compile --variants ccq-gdn --out $S/train
echo "suite done" >> $S/gpu.txt
