#!/usr/bin/env bash
# Call 1 (2026-12-03 tenth session): the model-level GPU tests on the committed statistic code, per-kernel profile of
# GDN beside fla's GDN and Q-Delta (B8 T4K), compiled 340M training with repeated windows.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
timeout 250 python3 benchmarks/warm_compile.py --jobs 2 --ops fla_chunk_gated_delta_rule,gated_delta_rule,qdelta_rule > $S/warm.log 2>&1 &
timeout 280 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 250 -n 6 --dist loadfile \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py \
  tests/test_kernels_gpu_determinism.py tests/test_model_gpu.py > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
wait; echo "warm done" >> $S/gpu.txt
timeout 100 python3 benchmarks/profile_gpu.py --ops gated_delta_rule,fla_chunk_gated_delta_rule,qdelta_rule --no-decode --no-train --out $S > $S/profile.log 2>&1; echo "profile rc=$?" >> $S/gpu.txt
timeout 170 python3 benchmarks/train_throughput.py --steps 6 --warmup 3 --repeats 3 --new-tokens 64 --compile --out $S > $S/train-compiled.log 2>&1; echo "train compiled rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
