#!/usr/bin/env bash
# Clean A/B of the split WY forward; the new CCQ statistic backward (one chunk kernel) timed at BK 64 and 32;
# the statistic vs the backbone (ccq_fusion_bound, no fla); GPU tests of everything touched. Writes /root/suite.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
K="benchmarks/kernels.py --seq-lens 2048,8192 --no-fla-shapes"
timeout 70 python3 $K --ops gated_delta_rule,qdelta_rule --out $S/gdn-default > $S/gdn-default.log 2>&1; echo "gdn default rc=$?" >> $S/gpu.txt
LINMEM_GDN_WY_FWD_SPLIT=1 timeout 70 python3 $K --ops gated_delta_rule,qdelta_rule --out $S/gdn-split4 > $S/gdn-split4.log 2>&1; echo "gdn split4 rc=$?" >> $S/gpu.txt
timeout 90 python3 $K --ops ccq_gated_delta_rule,ccq_gla,gla --out $S/ccq-bk64 > $S/ccq-bk64.log 2>&1; echo "ccq bk64 rc=$?" >> $S/gpu.txt
LINMEM_CCQ_CHUNK_BK=32 timeout 70 python3 $K --ops ccq_gated_delta_rule --out $S/ccq-bk32 > $S/ccq-bk32.log 2>&1; echo "ccq bk32 rc=$?" >> $S/gpu.txt
timeout 60 python3 benchmarks/ccq_fusion_bound.py --out $S > $S/ccq-bound.log 2>&1; echo "ccq bound rc=$?" >> $S/gpu.txt
timeout 190 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 170 -n 5 --dist loadfile \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_gpu_determinism.py tests/test_model_gpu.py \
  -k "stats or ccq or autocast" > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
