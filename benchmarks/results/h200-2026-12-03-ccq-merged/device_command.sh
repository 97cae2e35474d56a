#!/usr/bin/env bash
# Call B: the merged CCQ key-gradient kernel (GPU tests, A/B against the value + key pair), the CCQ ops beside their
# backbones (T 2K, 8K, 32K), GDN's state block A/B at 16K/32K, 340M training compiled.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
timeout 120 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 100 -n 4 \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_ccq.py > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
for merged in 1 0; do
  mkdir -p $S/bound-merged$merged
  LINMEM_CCQ_BWD_ONE_KEY_KERNEL=$merged timeout 70 python3 benchmarks/ccq_fusion_bound.py --out $S/bound-merged$merged > $S/bound-merged$merged.log 2>&1; echo "bound merged=$merged rc=$?" >> $S/gpu.txt
done
timeout 150 python3 benchmarks/kernels.py --ops gated_delta_rule,ccq_gated_delta_rule,gla,ccq_gla --seq-lens 2048,8192,16384,32768 --no-fla-shapes --out $S > $S/kernels.log 2>&1; echo "kernels rc=$?" >> $S/gpu.txt
mkdir -p $S/gdn-bv32
LINMEM_GDN_STATE_BV=32 timeout 45 python3 benchmarks/kernels.py --ops gated_delta_rule --seq-lens 16384,32768 --no-fla-shapes --out $S/gdn-bv32 > $S/gdn-bv32.log 2>&1; echo "gdn bv32 rc=$?" >> $S/gpu.txt
timeout 80 python3 benchmarks/autocast_bisect.py --out $S > $S/bisect.log 2>&1; echo "bisect rc=$?" >> $S/gpu.txt
timeout 140 python3 benchmarks/train_throughput.py --steps 6 --warmup 3 --new-tokens 64 --compile --out $S > $S/train-compiled.log 2>&1; echo "train compiled rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
