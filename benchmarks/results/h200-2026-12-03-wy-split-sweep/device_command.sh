#!/usr/bin/env bash
# The GDN family with the three-kernel WY forward as the only form: sweep of our ops (every T and the fla-1.3B shape),
# GPU tests of the GDN / Q-Delta / CCQ-GDN kernels and models, 340M training compiled. Writes /root/suite.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
timeout 150 python3 benchmarks/kernels.py --ops gated_delta_rule,qdelta_rule,ccq_gated_delta_rule --out $S > $S/kernels.log 2>&1; echo "kernels rc=$?" >> $S/gpu.txt
timeout 230 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 200 -n 6 --dist loadfile \
  tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py tests/test_kernels_gpu_determinism.py \
  tests/test_model_gpu.py -k "not gla" > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
timeout 140 python3 benchmarks/train_throughput.py --steps 6 --warmup 3 --new-tokens 64 --compile --out $S > $S/train-compiled.log 2>&1; echo "train compiled rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
