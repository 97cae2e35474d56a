#!/usr/bin/env bash
# GLA tests (A kernel one-product default) + compiled-training GPU tests; training throughput eager vs compiled; V-slice width
S=/root/suite; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
timeout 170 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 160 -n 4 --dist load \
  tests/test_kernels_triton_gla.py tests/test_model_gpu.py -k "gla or compiled" > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
timeout 100 python3 benchmarks/train_throughput.py --steps 6 --warmup 2 --new-tokens 64 --variants ccq-gdn --out $S > $S/train-eager.log 2>&1; echo "train eager rc=$?" >> $S/gpu.txt
timeout 200 python3 benchmarks/train_throughput.py --steps 6 --warmup 3 --compile --out $S > $S/train-compiled.log 2>&1; echo "train compiled rc=$?" >> $S/gpu.txt
timeout 90 python3 .gpu/vslice.py $S/vslice.json > $S/vslice.log 2>&1; echo "vslice rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
