#!/usr/bin/env bash
# Session 14, call 3: the short convolution's launch sweep alone on the GPU (CUDA-graph timing; call 2's op timing
# was launch-bound and disturbed), then fla's GLA compiled alone and GLA beside fla at the fla-1.3B shape.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step conv 150 python3 benchmarks/conv_launch.py --out $S/conv
pkill -f conv_launch.py
step warm 200 python3 benchmarks/warm_compile.py --jobs 4 --ops fla_chunk_gla
pkill -f warm_compile.py
step kernels 90 python3 benchmarks/kernels.py --seq-lens none --ops gla,fla_chunk_gla --out $S
echo "suite done" >> $S/gpu.txt
