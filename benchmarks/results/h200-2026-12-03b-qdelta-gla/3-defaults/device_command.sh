#!/usr/bin/env bash
# Session 11, call 3: the new defaults (GLA launch table, Q-Delta wy_A at 1 stage): repeatability of every Q-Delta and
# GLA kernel at B8 T4K; GPU tests (GLA, Q-Delta, determinism, their models); the kernel benchmark of GLA, CCQ-GLA,
# GDN, Q-Delta beside fla's GLA and GDN in one process.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step warm 230 python3 benchmarks/warm_compile.py --jobs 3 --ops fla_chunk_gla,fla_chunk_gated_delta_rule,gla,ccq_gla &
step repeatability 60 python3 benchmarks/kernel_repeatability.py --ops qdelta_rule,gla --out $S
step gpu_tests 170 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 160 -n 6 --dist load \
  tests/test_kernels_gpu_determinism.py tests/test_kernels_triton_gla.py tests/test_kernels_triton_qdelta.py \
  tests/test_model_gpu.py -k "determinism or bitwise or gla or qdelta"
wait
step kernels 270 python3 benchmarks/kernels.py --ops gla,ccq_gla,fla_chunk_gla,gated_delta_rule,qdelta_rule,fla_chunk_gated_delta_rule --out $S
echo "suite done" >> $S/gpu.txt
