#!/usr/bin/env bash
# Session 12, call 3: why GDN's forward and GLA's backward lose to fla at the fla-1.3B shapes (B8 T4K; GDN H6 dk256
# dv512, GLA H4 dk256 dv512): per-kernel profile, then the sweepable kernels' settings at those shapes.
S=/root/suite; rm -rf $S; mkdir -p $S
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $S/gpu.txt
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS; timeout $limit "$@" > $S/$name.log 2>&1; echo "$name rc=$? $((SECONDS-t0))s" >> $S/gpu.txt; }
step prof-gdn 60 python3 benchmarks/profile_gpu.py --ops gated_delta_rule,qdelta_rule --shape 8,4096,6,256,512 --no-decode --no-train --out $S/prof-gdn
step prof-gla 40 python3 benchmarks/profile_gpu.py --ops gla --shape 8,4096,4,256,512 --no-decode --no-train --out $S/prof-gla
step sweep-gdn 120 python3 benchmarks/kernel_settings.py --jobs 14 --kernels state_fwd,state_bwd,wy_wu,output_dqk --shape 8,4096,6,256,512 --out $S/sweep-gdn --exports $S/sweep-gdn-exports.sh
step sweep-gla 150 python3 benchmarks/kernel_settings.py --jobs 14 --kernels gla_state_fwd,gla_state_fwd_fp32,gla_state_bwd,gla_output,gla_bwd_dA_dv,gla_bwd_inter --shape 8,4096,4,256,512 --out $S/sweep-gla --exports $S/sweep-gla-exports.sh
echo "suite done" >> $S/gpu.txt
