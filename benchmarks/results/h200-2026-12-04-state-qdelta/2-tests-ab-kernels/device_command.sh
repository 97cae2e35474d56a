#!/usr/bin/env bash
# Session 12, call 2: the new defaults (GDN state kernels at BV 32 pipelined, GLA's fp32-state forward 32 x 128 at
# 2 warps, Q-Delta's wy_A at 2 stages): repeatability and GPU tests while fla compiles; then Q-Delta / GDN WY
# launch A/B at B8 T4K and GLA's fp32-state forward swept at B2 T16K; the Triton cache comes back for call 3.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step warm 320 python3 benchmarks/warm_compile.py --jobs 4 --ops fla_chunk_gla,fla_chunk_gated_delta_rule &
step repeatability 90 python3 benchmarks/kernel_repeatability.py --ops gated_delta_rule,qdelta_rule,gla --out $S/rep
step gpu_tests 230 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 220 -n 8 --dist load \
  tests/test_kernels_triton_gla.py tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_gpu_determinism.py tests/test_model_gpu.py
wait
tar czf $S/triton-cache.tgz -C ~/.triton cache; ls -la $S/triton-cache.tgz >> $S/gpu.txt
V="abk64:LINMEM_GDN_WY_FWD_BLOCK=64;abk128:LINMEM_GDN_WY_FWD_BLOCK=128;abk128s1:LINMEM_GDN_WY_FWD_BLOCK=128,LINMEM_GDN_A_STAGES=1"
V="$V;gb32:LINMEM_GDN_WY_GATES_BLOCK=32;kb16:LINMEM_GDN_WY_KEYS_BLOCK=16;kb64:LINMEM_GDN_WY_KEYS_BLOCK=64"
V="$V;kw2:LINMEM_GDN_WY_KEYS_WARPS=2;kw8:LINMEM_GDN_WY_KEYS_WARPS=8"
step ab-wy 170 python3 benchmarks/launch_ab.py --ops qdelta_rule,gated_delta_rule --seq-lens 4096 --variants "$V" --out $S/ab-wy
step sweep-glafp32-16k 80 python3 benchmarks/kernel_settings.py --jobs 12 --kernels gla_state_fwd_fp32 --shape 2,16384 --out $S/sweep-glafp32-16k --exports $S/sweep-glafp32-16k-exports.sh
echo "suite done" >> $S/gpu.txt
