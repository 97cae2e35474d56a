#!/usr/bin/env bash
# Call 2: launch-setting sweep of GDN's state, dqk and wu kernels; A/B of GDN / Q-Delta fwd+bwd under the winners;
# the GDN / Q-Delta kernel GPU tests under them.
S=/root/suite; rm -rf $S; mkdir -p $S/base $S/tuned
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
timeout 300 python3 benchmarks/gdn_kernel_settings.py --jobs 8 --out $S --exports $S/exports.sh > $S/settings.log 2>&1; echo "settings rc=$?" >> $S/gpu.txt
cat $S/exports.sh >> $S/gpu.txt
timeout 70 python3 benchmarks/kernels.py --ops gated_delta_rule,qdelta_rule --seq-lens 2048,8192,32768 --no-fla-shapes --out $S/base > $S/base.log 2>&1; echo "base rc=$?" >> $S/gpu.txt
. $S/exports.sh
timeout 70 python3 benchmarks/kernels.py --ops gated_delta_rule,qdelta_rule --seq-lens 2048,8192,32768 --no-fla-shapes --out $S/tuned > $S/tuned.log 2>&1; echo "tuned rc=$?" >> $S/gpu.txt
timeout 110 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 100 -n 4 --dist loadfile \
  tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py tests/test_kernels_gpu_determinism.py > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
