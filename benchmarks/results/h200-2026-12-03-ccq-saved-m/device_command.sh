#!/usr/bin/env bash
# Call C: the statistic backward reading the forward's saved chunk-start M (dq fused into the q/k gradient kernel,
# or LINMEM_CCQ_BWD_FUSED_DQ=0: a separate Mᵀ read): GPU tests, A/B, then the sweep of our ops under the winner.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
timeout 130 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 120 -n 6 --dist loadfile \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_ccq.py tests/test_model_gpu.py -k ccq > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
for fused in 1 0; do
  mkdir -p $S/bound-fused$fused
  LINMEM_CCQ_BWD_FUSED_DQ=$fused timeout 50 python3 benchmarks/ccq_fusion_bound.py --out $S/bound-fused$fused > $S/bound-fused$fused.log 2>&1; echo "bound fused=$fused rc=$?" >> $S/gpu.txt
done
best=$(python3 -c "
import json
t = {f: json.load(open('$S/bound-fused%d/ccq-fusion-bound-h200.json' % f))['rows'][0]['statistic_fwdbwd_ms'] for f in (1, 0)}
print(1 if t[1] <= t[0] else 0)" 2>/dev/null || echo 1)
export LINMEM_CCQ_BWD_FUSED_DQ=$best; echo "fused dq in force: $best" >> $S/gpu.txt
timeout 175 python3 benchmarks/kernels.py --ops gated_delta_rule,qdelta_rule,ccq_gated_delta_rule,gla,ccq_gla --out $S > $S/kernels.log 2>&1; echo "kernels rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
