#!/usr/bin/env bash
# Call A: the statistic backward reading dq̃ (no fp32 du), chunk-start M in bf16, narrower recurrence blocks for
# few sequences: per-kernel profile, the statistic beside fla, GPU tests of the CCQ / GDN / Q-Delta kernels and models.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
git log --oneline -1 >> $S/gpu.txt
timeout 100 python3 benchmarks/profile_gpu.py --ops ccq_gated_delta_rule,gated_delta_rule --no-decode --no-train --out $S > $S/profile.log 2>&1; echo "profile rc=$?" >> $S/gpu.txt
timeout 120 python3 benchmarks/ccq_fusion_bound.py --out $S > $S/ccq-bound.log 2>&1; echo "bound rc=$?" >> $S/gpu.txt
timeout 290 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 250 -n 6 --dist loadfile \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_ccq.py tests/test_kernels_triton_gdn.py \
  tests/test_kernels_triton_qdelta.py tests/test_kernels_gpu_determinism.py tests/test_model_gpu.py \
  -k "not gla or ccq" > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
