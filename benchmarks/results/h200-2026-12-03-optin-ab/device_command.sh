#!/usr/bin/env bash
# A/B of the opt-in kernel forms + all GPU tests + GLA at the fla-1.3B shape beside fla. Writes /root/suite.
S=/root/suite; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
python3 -c "import torch, triton, transformers; print(torch.__version__, triton.__version__, transformers.__version__)" >> $S/gpu.txt
timeout 250 python3 benchmarks/warm_compile.py --jobs 4 --ops fla_chunk_gla > $S/warm.log 2>&1 &
WARM=$!
timeout 230 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 200 -n 6 --dist loadfile \
  tests/test_kernels_triton_gla.py tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_triton_conv.py tests/test_kernels_gpu_determinism.py \
  tests/test_model_gpu.py tests/test_hub_gpu.py > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
wait $WARM; echo "warm rc=$?" >> $S/gpu.txt
K="benchmarks/kernels.py --seq-lens 2048,8192 --no-fla-shapes"
timeout 60 python3 $K --ops gated_delta_rule,qdelta_rule --out $S/gdn-default > $S/gdn-default.log 2>&1; echo "gdn default rc=$?" >> $S/gpu.txt
LINMEM_GDN_WY_FWD_REGISTER_BLOCKS=1 timeout 60 python3 $K --ops gated_delta_rule,qdelta_rule --out $S/gdn-regblocks > $S/gdn-regblocks.log 2>&1; echo "gdn regblocks rc=$?" >> $S/gpu.txt
timeout 50 python3 $K --ops gla,ccq_gla --out $S/gla-default > $S/gla-default.log 2>&1; echo "gla default rc=$?" >> $S/gpu.txt
LINMEM_GLA_ONE_PRODUCT_A=1 timeout 50 python3 $K --ops gla,ccq_gla --out $S/gla-oneproduct > $S/gla-oneproduct.log 2>&1; echo "gla oneproduct rc=$?" >> $S/gpu.txt
timeout 90 python3 benchmarks/kernels.py --seq-lens none --ops fla_chunk_gla,gla --out $S/gla-fla-shape > $S/gla-fla-shape.log 2>&1; echo "gla fla shape rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
