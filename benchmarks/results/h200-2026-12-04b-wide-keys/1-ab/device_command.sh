#!/usr/bin/env bash
# Session 13, call 1: the d_k 256 candidates (GDN state/dqk launches, GLA wide-key launches, GLA in-kernel slice sums):
# their GPU tests, then op-level A/B at the fla-1.3B shapes (outputs and grads vs defaults, repeatability, fwd+bwd time).
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
GDN_STATE="LINMEM_GDN_STATE_FWD_WARPS=8,LINMEM_GDN_STATE_FWD_STAGES=2,LINMEM_GDN_STATE_FWD_BV=64,LINMEM_GDN_STATE_BWD_WARPS=8,LINMEM_GDN_STATE_BWD_STAGES=2,LINMEM_GDN_STATE_BWD_BV=64"
GDN_DQK="LINMEM_GDN_DQK_WARPS=8,LINMEM_GDN_DQK_STAGES=2,LINMEM_GDN_DQK_BK=128,LINMEM_GDN_DQK_BV=128"
GLA_WIDE="LINMEM_GLA_STATE_FWD_WARPS=4,LINMEM_GLA_STATE_FWD_STAGES=2,LINMEM_GLA_STATE_FWD_BK=128,LINMEM_GLA_STATE_FWD_BV=128,LINMEM_GLA_STATE_FP32_WARPS=4,LINMEM_GLA_STATE_FP32_STAGES=2,LINMEM_GLA_STATE_FP32_BK=32,LINMEM_GLA_STATE_FP32_BV=128,LINMEM_GLA_DA_DV_WARPS=4,LINMEM_GLA_DA_DV_STAGES=3,LINMEM_GLA_DA_DV_BK=32,LINMEM_GLA_DA_DV_BV=128"
step slice_tests 150 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 140 -n 8 --dist load \
  tests/test_kernels_triton_gla.py -k "slice_sums or g3 or g4"
step ab_gdn 220 python3 benchmarks/launch_ab.py --ops gated_delta_rule,qdelta_rule --shapes 8,4096,6,256,512 \
  --variants "state:$GDN_STATE;statedqk:$GDN_STATE,$GDN_DQK" --out $S/ab-gdn
step ab_gla 220 python3 benchmarks/launch_ab.py --ops gla --shapes 8,4096,4,256,512 \
  --variants "sums:LINMEM_GLA_SLICE_SUMS=1;wide:$GLA_WIDE;both:$GLA_WIDE,LINMEM_GLA_SLICE_SUMS=1" --out $S/ab-gla
echo "suite done" >> $S/gpu.txt
