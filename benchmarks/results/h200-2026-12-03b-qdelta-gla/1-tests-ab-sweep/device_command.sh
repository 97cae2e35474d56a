#!/usr/bin/env bash
# Session 11, call 1: GPU tests of the committed defaults (output_dqk at 2 stages, determinism at B8 T4K), GDN/Q-Delta
# launch A/B at 4K/16K, GLA kernel sweep, GLA launch A/B under the sweep's winners.
S=/root/suite; rm -rf $S; mkdir -p $S/ab-gdn $S/sweep-gla $S/ab-gla
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
t0=$SECONDS
timeout 210 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 180 -n 6 --dist loadfile --durations=20 \
  tests/test_kernels_gpu_determinism.py tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py \
  tests/test_model_gpu.py > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$? $((SECONDS-t0))s passed=$(grep -c ' PASSED' $S/gpu_tests.log) failed=$(grep -c ' FAILED' $S/gpu_tests.log)" >> $S/gpu.txt
t0=$SECONDS
timeout 110 python3 benchmarks/launch_ab.py --ops gated_delta_rule,qdelta_rule --seq-lens 4096,16384 --variants "bv64:LINMEM_GDN_STATE_BV=64;bwd128:LINMEM_GDN_STATE_BWD_BV=128;both:LINMEM_GDN_STATE_BV=64,LINMEM_GDN_STATE_BWD_BV=128" --out $S/ab-gdn > $S/ab-gdn.log 2>&1
echo "ab gdn rc=$? $((SECONDS-t0))s" >> $S/gpu.txt
t0=$SECONDS
timeout 150 python3 benchmarks/kernel_settings.py --kernels gla_state_fwd,gla_state_fwd_fp32,gla_state_bwd,gla_output,gla_bwd_dA_dv,gla_bwd_inter \
  --jobs 14 --out $S/sweep-gla --exports $S/sweep-gla/exports.sh > $S/sweep-gla.log 2>&1
echo "sweep gla rc=$? $((SECONDS-t0))s" >> $S/gpu.txt
if [ -s $S/sweep-gla/exports.sh ]; then
  V="tuned:$(sed -n 's/^export //p' $S/sweep-gla/exports.sh | paste -sd, -)"
  echo "$V" > $S/ab-gla/variants.txt
  t0=$SECONDS
  timeout 100 python3 benchmarks/launch_ab.py --ops gla,ccq_gla --seq-lens 4096,16384 --variants "$V" --out $S/ab-gla > $S/ab-gla.log 2>&1
  echo "ab gla rc=$? $((SECONDS-t0))s" >> $S/gpu.txt
fi
echo "suite done" >> $S/gpu.txt
