#!/usr/bin/env bash
# final suite: no sweeps; GPU tests, full kernel sweep with fla (T 1K..32K + fla-1.3B shapes), training throughput
mkdir -p /root/suite
CCQ_S=0 WY_S=0 FUSION_S=0 TEST_S=260 WARM_S=300 BENCH_S=420 TRAIN_S=200 PROFILE_S=0 OUT=/root/suite \
  setsid nohup bash benchmarks/run_gpu_suite.sh > /root/suite.log 2>&1 < /dev/null &
bash .gpu/watch.sh "${1:-540}"
