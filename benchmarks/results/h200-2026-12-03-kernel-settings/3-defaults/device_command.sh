#!/usr/bin/env bash
# Call 3: the new GDN launch defaults (state kernels BV 64 + warps/stages table, wy_wu 128-wide blocks, output_dqk
# 128-wide key block): dqk / state settings re-checked (accuracy now NaN-aware), GPU tests of GDN / Q-Delta / CCQ-GDN
# kernels and models, then the sweep of GDN, Q-Delta, CCQ-GDN beside fla's GDN in one process.
S=/root/suite; rm -rf $S; mkdir -p $S
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
timeout 100 python3 benchmarks/gdn_kernel_settings.py --kernels output_dqk,state_fwd,state_bwd --jobs 12 --out $S > $S/settings.log 2>&1; echo "settings rc=$?" >> $S/gpu.txt
timeout 200 python3 benchmarks/warm_compile.py --jobs 2 --ops fla_chunk_gated_delta_rule > $S/warm.log 2>&1 &
timeout 230 python3 -m pytest -m gpu -v -rfE -p no:cacheprovider --timeout 200 -n 6 --dist loadfile \
  tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py tests/test_kernels_gpu_determinism.py \
  tests/test_kernels_ccq.py tests/test_model_gpu.py -k "not gla or gdn" > $S/gpu_tests.log 2>&1
echo "gpu tests rc=$?" >> $S/gpu.txt
wait; echo "warm done" >> $S/gpu.txt
timeout 200 python3 benchmarks/kernels.py --ops gated_delta_rule,qdelta_rule,ccq_gated_delta_rule,fla_chunk_gated_delta_rule --out $S > $S/kernels.log 2>&1; echo "kernels rc=$?" >> $S/gpu.txt
echo "suite done" >> $S/gpu.txt
