#!/usr/bin/env bash
# Session 11, call 2: which Q-Delta kernel is not repeatable (and under which wy_wu launch it is); GLA state-kernel
# sweep at B2 T16K; GLA kernel GPU tests under the B8 T4K sweep's winners; the model GPU tests call 1 did not reach.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step rep-default 60 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule,gated_delta_rule --out $S/rep-default
mkdir -p $S/rep-wu64 $S/rep-wu8w $S/rep-wus1
LINMEM_GDN_WU_BK=64 LINMEM_GDN_WU_BV=64 step rep-wu64 40 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule --out $S/rep-wu64
LINMEM_GDN_WU_WARPS=8 step rep-wu8w 40 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule --out $S/rep-wu8w
LINMEM_GDN_WU_STAGES=1 step rep-wus1 40 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule --out $S/rep-wus1
step sweep-gla16k 90 python3 benchmarks/kernel_settings.py --kernels gla_state_fwd,gla_state_fwd_fp32,gla_state_bwd,gla_output,gla_bwd_inter \
  --shape 2,16384 --jobs 14 --out $S/sweep-gla16k --exports $S/sweep-gla16k-exports.sh
( set -a; . .gpu/gla_tuned.sh; set +a
  step gla-tests-tuned 120 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 110 -n 8 \
    tests/test_kernels_triton_gla.py "tests/test_kernels_gpu_determinism.py::test_repeated_calls_are_bitwise_equal" -k "gla" )
step model-tests 150 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 140 -n 8 --dist load \
  tests/test_model_gpu.py tests/test_kernels_triton_gdn.py -k "autocast or compiled_training_step_matches_eager or cuda_graph or decode_step or ccq_gdn"
echo "suite done" >> $S/gpu.txt
