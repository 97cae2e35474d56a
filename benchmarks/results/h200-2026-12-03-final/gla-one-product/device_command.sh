#!/usr/bin/env bash
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
echo start > $S/gpu.txt
timeout 260 python3 benchmarks/warm_compile.py --jobs 6 --ops fla_chunk_gla > $S/warm.log 2>&1 &
WARM=$!
timeout 100 python3 .gpu/vslice.py $S/vslice.json > $S/vslice.log 2>&1; echo "vslice rc=$?" >> $S/gpu.txt
wait $WARM; echo "warm rc=$?" >> $S/gpu.txt
timeout 200 python3 benchmarks/kernels.py --ops fla_chunk_gla,gla,ccq_gla,sdpa --out $S > $S/kernels.log 2>&1; echo "kernels rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
