#!/usr/bin/env bash
# GLA with tf32x3 diagonal products in the backward: GLA GPU tests, then GLA / CCQ-GLA beside fla's chunk_gla and SDPA
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $OUT/gpu.txt
timeout 260 python3 benchmarks/warm_compile.py --jobs 6 --ops fla_chunk_gla,gla,ccq_gla > $OUT/warm.log 2>&1 &
WARM=$!
timeout 150 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider -n 4 --dist load tests/test_kernels_triton_gla.py > $OUT/gla_gpu_tests.log 2>&1
echo "gla gpu tests rc=$?" >> $OUT/gpu.txt
grep -E "passed|failed|FAILED" $OUT/gla_gpu_tests.log | tail -4
wait $WARM; echo "warm rc=$?" >> $OUT/gpu.txt
timeout 240 python3 benchmarks/kernels.py --ops gla,ccq_gla,fla_chunk_gla,sdpa --out $OUT > $OUT/kernels.log 2>&1
echo "kernels rc=$?" >> $OUT/gpu.txt
grep -E "^(gla|ccq_gla|fla_chunk_gla|sdpa) " $OUT/kernels.log; cat $OUT/gpu.txt
