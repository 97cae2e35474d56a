#!/usr/bin/env bash
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
PARALLEL=$(python3 -c "import xdist" 2>/dev/null && echo "-n 4 --dist load")
timeout 200 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider $PARALLEL tests/test_kernels_triton_gla.py > $OUT/gla_gpu_tests.log 2>&1
echo "gla gpu tests rc=$?" >> $OUT/gpu.txt
grep -E "passed|failed|FAILED|Error" $OUT/gla_gpu_tests.log | tail -12
timeout 200 python3 benchmarks/kernels.py --ops gla,ccq_gla --seq-lens 2048,8192 --no-fla-shapes --out $OUT > $OUT/kernels_gla.log 2>&1
echo "kernels rc=$?" >> $OUT/gpu.txt
tail -n 12 $OUT/kernels_gla.log
timeout 100 python3 benchmarks/profile_gpu.py --ops gla --no-decode --no-train --out $OUT > $OUT/profile.log 2>&1
echo "profile rc=$?" >> $OUT/gpu.txt
tail -n 30 $OUT/profile.log | cut -c1-160; cat $OUT/gpu.txt
