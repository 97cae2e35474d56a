#!/usr/bin/env bash
# Session 14, call 1: the two off-by-default candidates of last session. GPU tests of GLA's in-place value slices,
# the fused norms and the graphed training step; GLA fwd+bwd at the fla-1.3B shape with slices in place (A/B);
# 340M CCQ-GDN training, CUDA graph, with and without the fused norms; the training profile with fused norms;
# then the compiled + graphed step.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step tests 170 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 160 -n 6 --dist load tests/test_kernels_triton_gla.py -k "value_slices or norm or graphed" tests/test_kernels_triton_norm.py tests/test_train_throughput_script.py
step ab_gla 60 python3 benchmarks/launch_ab.py --ops gla --shapes 8,4096,4,256,512 --variants "inplace:LINMEM_GLA_SLICES_IN_PLACE=1" --out $S/ab-gla
step train 80 python3 benchmarks/train_throughput.py --cuda-graph --variants ccq-gdn --new-tokens 32 --out $S/train
step train_norm 80 env LINMEM_FUSED_NORM=1 python3 benchmarks/train_throughput.py --cuda-graph --variants ccq-gdn --new-tokens 32 --out $S/train-norm
step prof_norm 50 env LINMEM_FUSED_NORM=1 python3 benchmarks/profile_gpu.py --no-decode --ops '' --out $S/prof-norm
step train_compile 150 python3 benchmarks/train_throughput.py --compile --cuda-graph --variants ccq-gdn --new-tokens 32 --out $S/train-compile
echo "suite done" >> $S/gpu.txt
