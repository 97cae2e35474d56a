#!/usr/bin/env bash
# WY forward split A/B (warps 4, 8) against the fused default; the GPU tests not yet run on a GPU; the CCQ
# statistic beside fla's chunk_simple_gla (ccq_fusion_bound.py). Writes /root/suite.
S=/root/suite; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
# fla's simple-GLA compiles (CPU) while our kernels are timed (GPU time per call is microseconds)
PYTHONPATH=/tmp/site:$PWD timeout 300 python3 -c "
import torch, fla.ops.common.chunk_o as o; o.IS_NVIDIA_HOPPER = False
from fla.ops.simple_gla import chunk_simple_gla
q = torch.randn(8, 4096, 16, 128, device='cuda', dtype=torch.bfloat16, requires_grad=True)
g = (-torch.rand(8, 4096, 16, device='cuda') / 16).requires_grad_(True)
chunk_simple_gla(q, q, q, g=g, scale=1.0)[0].sum().backward(); torch.cuda.synchronize(); print('warm ok')
" > $S/warm.log 2>&1 &
WARM=$!
K="benchmarks/kernels.py --seq-lens 2048,8192 --no-fla-shapes --ops gated_delta_rule,qdelta_rule --allow-busy-gpu"
timeout 80 python3 $K --out $S/gdn-default > $S/gdn-default.log 2>&1; echo "gdn default rc=$?" >> $S/gpu.txt
LINMEM_GDN_WY_FWD_SPLIT=1 timeout 80 python3 $K --out $S/gdn-split4 > $S/gdn-split4.log 2>&1; echo "gdn split4 rc=$?" >> $S/gpu.txt
LINMEM_GDN_WY_FWD_SPLIT=1 LINMEM_GDN_WY_FWD_SPLIT_WARPS=8 timeout 80 python3 $K --out $S/gdn-split8 > $S/gdn-split8.log 2>&1; echo "gdn split8 rc=$?" >> $S/gpu.txt
wait $WARM; echo "warm rc=$?" >> $S/gpu.txt
PYTHONPATH=/tmp/site:$PWD timeout 120 python3 benchmarks/ccq_fusion_bound.py --out $S > $S/ccq-bound.log 2>&1; echo "ccq bound rc=$?" >> $S/gpu.txt
timeout 170 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 150 -n 4 \
  tests/test_kernels_triton_gdn.py tests/test_model_gpu.py -k "wy_forward_split or autocast or decode_steps_match_chunk_bf16" > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
