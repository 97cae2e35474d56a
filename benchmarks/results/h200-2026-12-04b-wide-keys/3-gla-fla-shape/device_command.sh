#!/usr/bin/env bash
# Session 13, call 3: the two model GPU tests call 2 left unfinished, while fla's GLA compiles; then
# benchmarks/kernels.py at the fla-1.3B GLA shape (GLA, CCQ-GLA and fla's GLA in one process).
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step warm 360 python3 benchmarks/warm_compile.py --jobs 2 --ops fla_chunk_gla &
step gpu_tests 200 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 190 -n 2 tests/test_model_gpu.py \
  -k "test_autocast_bf16_training_step_on_triton and (ccq-gla or qdelta-deltanet)"
wait
step kernels 180 python3 benchmarks/kernels.py --seq-lens none --ops gla,ccq_gla,fla_chunk_gla --out $S
echo "suite done" >> $S/gpu.txt
