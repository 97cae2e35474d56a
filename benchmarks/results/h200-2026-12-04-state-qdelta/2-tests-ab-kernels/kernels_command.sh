#!/usr/bin/env bash
# Run on the same warm machine right after device_command.sh (fla's kernels already in its Triton cache), same tree.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1; mkdir -p $OUT/k
timeout 420 python3 benchmarks/kernels.py --ops gla,fla_chunk_gla,gated_delta_rule,fla_chunk_gated_delta_rule,qdelta_rule --out $OUT/k > $OUT/k/kernels.log 2>&1
