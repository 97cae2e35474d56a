#!/usr/bin/env bash
# Session 14, call 2: GLA's in-place value slices and the fused norms are now defaults: the model GPU tests and the
# GLA, norm and conv kernel GPU tests under them (fla's GLA compiling beside); GLA beside fla at the fla-1.3B shape;
# then the short convolution's launch sweep (benchmarks/conv_launch.py).
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step warm 200 python3 benchmarks/warm_compile.py --jobs 2 --ops fla_chunk_gla &
step gpu_tests 260 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 250 -n 6 --dist load tests/test_model_gpu.py \
  tests/test_kernels_triton_gla.py tests/test_kernels_triton_norm.py tests/test_kernels_triton_conv.py
wait
step kernels 60 python3 benchmarks/kernels.py --seq-lens none --ops gla,fla_chunk_gla --out $S
step conv 170 python3 benchmarks/conv_launch.py --out $S/conv
echo "suite done" >> $S/gpu.txt
