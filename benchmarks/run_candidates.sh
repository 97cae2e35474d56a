#!/usr/bin/env bash
# Device calls of up to 10 minutes each on a cold H200 (parts 1-3 first; 4 if time is left) for the training-speed candidates that are off by default until
# timed (and Q-Delta's stored probe rows): their GPU tests, then the 340M CCQ-GDN training step (CUDA graph, B4 T4K) with each candidate alone and with
# all of them, compiled, fla beside ours at its own shapes, then the short convolution's launch sweep.
#   OUT=results_dir bash benchmarks/run_candidates.sh 1    # GPU tests, Q-Delta A/B, training: default, projections
#   OUT=results_dir bash benchmarks/run_candidates.sh 2    # training: fused loss, conv backward, all, compiled (2 modes)
#   OUT=results_dir bash benchmarks/run_candidates.sh 3    # fla beside ours at the fla-1.3B shapes (fla importable)
#   OUT=results_dir bash benchmarks/run_candidates.sh 4    # compiled with the norm kernels; conv launch sweep; padded/packed
# Each candidate becomes a default only if its tests pass and it is faster here:
#   LINMEM_FUSED_PROJECTIONS=1     linmem/modeling/projection.py (FUSED_PROJECTIONS)
#   --fused-loss                   config.fuse_linear_cross_entropy (linmem/kernels/loss)
#   LINMEM_CONV_FUSED_BWD=1        linmem/kernels/conv/triton_conv.py (FUSED_BACKWARD)
#   LINMEM_QDELTA_STORE_PROBE=1    linmem/kernels/gated_delta_rule/triton_config.py (STORE_PROBE; Q-Delta / GDN)
#   LINMEM_FUSED_NORM_COMPILED=1   linmem/kernels/norm/op.py (FUSED_NORM_COMPILED; compiled runs only)
set -uo pipefail
OUT=${OUT:-benchmarks/results/candidates}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
         echo "$name rc=$? $((SECONDS - t0))s" >> "$OUT/gpu.txt"; }
PART=${1:-1}
PARALLEL=$($PY -c "import xdist" 2>/dev/null && echo "-n 6 --dist load")
TRAIN="$PY benchmarks/train_throughput.py --cuda-graph --variants ccq-gdn --new-tokens 32 --repeats 2"
if [ "$PART" = 1 ]; then
# the model GPU tests with every candidate switch on (the defaults passed them on 2026-12-04); the Q-Delta kernel
# tests run both probe paths themselves
step tests 200 env LINMEM_FUSED_PROJECTIONS=1 LINMEM_CONV_FUSED_BWD=1 LINMEM_QDELTA_STORE_PROBE=1 $PY -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 190 $PARALLEL tests/test_training_graph.py \
  tests/test_kernels_loss.py tests/test_kernels_triton_conv.py tests/test_kernels_triton_qdelta.py \
  tests/test_model_gpu.py tests/test_library_ops.py tests/test_offsets_memo.py tests/test_packed_sequences.py -k "not hub"
# Q-Delta with the probe rows stored, beside GDN, at launch_ab.py's default shapes (H16 d128: the 1.05 target)
step ab-qdelta 120 $PY benchmarks/launch_ab.py --ops qdelta_rule,gated_delta_rule \
  --variants "store:LINMEM_QDELTA_STORE_PROBE=1" --out "$OUT/ab-qdelta"
step train-default 70 $TRAIN --out "$OUT/default"
step train-projections 70 env LINMEM_FUSED_PROJECTIONS=1 $TRAIN --out "$OUT/projections"
elif [ "$PART" = 4 ]; then
# the fused norm kernels inside the compiled graph (custom ops) against Inductor's fusion of the PyTorch norm (part 2)
step train-compile-norm 150 env LINMEM_FUSED_NORM_COMPILED=1 $TRAIN --compile --out "$OUT/compile-norm"
step conv-launch 200 $PY benchmarks/conv_launch.py --dims 1024 --out "$OUT/conv-launch"
# compiled training on padded rows (one graph for every padding) and on packed documents (padding-free), against part
# 2's dense compiled figure
for layout in padded packed; do
  step train-compile-$layout 110 $PY benchmarks/train_throughput.py --variants ccq-gdn --new-tokens 32 --repeats 2 \
    --compile --batch-layout $layout --out "$OUT/compile-$layout"
done
elif [ "$PART" = 3 ]; then
# fla's GLA beside ours at the fla-1.3B shapes (its compile and autotuning overran three calls on 2026-12-04: it warms
# alone first, in parallel processes); fla must be importable (PYTHONPATH is kept)
step warm-fla 300 $PY benchmarks/warm_compile.py --ops fla_chunk_gla,fla_chunk_gated_delta_rule --jobs 8
step kernels-fla-shapes 240 $PY benchmarks/kernels.py --seq-lens none \
  --ops gla,fla_chunk_gla,gated_delta_rule,fla_chunk_gated_delta_rule,qdelta_rule --out "$OUT/kernels-fla-shapes.json"
else
step train-default 70 $TRAIN --out "$OUT/default-2"
step train-loss 70 $TRAIN --fused-loss --out "$OUT/loss"
step train-conv 70 env LINMEM_CONV_FUSED_BWD=1 $TRAIN --out "$OUT/conv"
step train-all 70 env LINMEM_FUSED_PROJECTIONS=1 LINMEM_CONV_FUSED_BWD=1 $TRAIN --fused-loss --out "$OUT/all"
# one graph (the kernels as custom ops, linmem/kernels/library.py) against the earlier graph-broken 136.3k
step train-compile 150 $TRAIN --compile --out "$OUT/compile"
# Inductor's own CUDA graphs over the one-graph step (no CUDAGraphTrainingStep: what Trainer(torch_compile_mode=...) gets)
step train-reduce-overhead 150 $PY benchmarks/train_throughput.py --variants ccq-gdn --new-tokens 32 --repeats 2 \
  --compile --compile-mode reduce-overhead --out "$OUT/reduce-overhead"
fi
echo "done" >> "$OUT/gpu.txt"
