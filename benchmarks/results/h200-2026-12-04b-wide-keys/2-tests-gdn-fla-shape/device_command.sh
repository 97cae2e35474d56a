#!/usr/bin/env bash
# Session 13, call 2: the new defaults (GDN/Q-Delta state kernels BV 64 / 8 warps / 2 stages at d_k > 128 for 16-bit
# inputs; GLA WIDE_KEY_LAUNCH; GLA SLICE_SUMS_IN_KERNELS on): GPU tests and repeatability at the fla-1.3B shapes while
# fla compiles, then benchmarks/kernels.py at the fla-1.3B shapes with fla in the same process.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step warm 330 python3 benchmarks/warm_compile.py --jobs 4 --ops fla_chunk_gla,fla_chunk_gated_delta_rule &
step rep-gdn 60 python3 benchmarks/kernel_repeatability.py --ops gated_delta_rule,qdelta_rule --shape 8,4096,6,256,512 --out $S/rep-gdn
step rep-gla 60 python3 benchmarks/kernel_repeatability.py --ops gla --shape 8,4096,4,256,512 --out $S/rep-gla
step gpu_tests 230 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 220 -n 8 --dist load \
  tests/test_kernels_triton_gla.py tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_gpu_determinism.py tests/test_model_gpu.py
wait
step kernels 150 python3 benchmarks/kernels.py --seq-lens none --out $S
echo "suite done" >> $S/gpu.txt
