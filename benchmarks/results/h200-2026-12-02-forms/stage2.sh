# Stage 2: the full GPU tests with the two-kernel WY backward (new default) and both opt-in forms switched on;
# default against opt-in timing in one process; each form that passed and is faster goes on; the sweep at the
# main lengths, training throughput, then the rest of the sweep.
S=/root/suite; mkdir -p $S
(
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt 2>&1
LINMEM_GDN_WY_FWD_INVERSE=squaring LINMEM_GLA_BWD_INTER=separate timeout 330 python3 -m pytest -m gpu -v -rfE \
  -p no:cacheprovider --timeout 300 -n 8 --dist loadfile \
  tests/test_kernels_triton_gla.py tests/test_kernels_triton_gdn.py tests/test_kernels_triton_qdelta.py \
  tests/test_kernels_triton_ccq_stats.py tests/test_kernels_gpu_determinism.py tests/test_model_gpu.py \
  tests/test_hub_gpu.py > $S/gpu_tests_split_squaring_separate.log 2>&1
echo "gpu tests (two-kernel WY bwd, squaring, GLA inter separate) rc=$?" >> $S/gpu.txt
timeout 90 python3 .gpu/forms_timing.py $S > $S/forms_timing.log 2>&1
python3 .gpu/choose.py $S > $S/forms.env 2>> $S/gpu.txt
cat $S/forms.env >> $S/gpu.txt
set -a; . $S/forms.env; set +a
OPS=fla_chunk_gla,fla_chunk_gated_delta_rule,sdpa,gla,gated_delta_rule,qdelta_rule,ccq_gla,ccq_gated_delta_rule
timeout 240 python3 benchmarks/kernels.py --resume --out $S --ops $OPS --seq-lens 4096,16384 --no-fla-shapes > $S/kernels.log 2>&1
echo "kernel benchmark (4K, 16K) rc=$?" >> $S/gpu.txt
timeout 100 python3 benchmarks/train_throughput.py --out $S > $S/train.log 2>&1
echo "train throughput rc=$?" >> $S/gpu.txt
timeout 600 python3 benchmarks/kernels.py --resume --out $S --ops $OPS > $S/kernels_rest.log 2>&1
echo "kernel benchmark rc=$?" >> $S/gpu.txt
echo "stage2 done" >> $S/gpu.txt
) > /root/stage2.log 2>&1
