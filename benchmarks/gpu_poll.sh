#!/usr/bin/env bash
# Watch background GPU jobs (tests, distillation) for up to $1 seconds; return early once every
# file named in $DONE_FILES exists. Prints a short status every $EVERY seconds.
# TESTS_LOG: a pytest log to summarise; WORK: a distillation folder; SUITE: a run_gpu_suite.sh output folder.
LIMIT=${1:-500} EVERY=${EVERY:-60} WORK=${WORK:-/root/distill} TESTS_LOG=${TESTS_LOG:-/root/tests.log}
end=$((SECONDS + LIMIT))
status() {
  echo "== $(date -u +%T)"
  [ -f "$TESTS_LOG" ] && { grep -c PASSED "$TESTS_LOG" | sed 's/^/tests passed: /'; grep "^FAILED\|Error" "$TESTS_LOG" | tail -8; tail -c 300 "$TESTS_LOG" | tr '\r' '\n' | tail -2; }
  [ -n "${SUITE:-}" ] && tail -n 3 "$SUITE/gpu.txt" "$SUITE/kernels.log" 2>/dev/null | cut -c1-220
  for f in "$WORK"/results/*/stage*.log; do
    [ -f "$f" ] && echo "$f: $(tr '\r' '\n' < "$f" | grep -v '^\s*$' | tail -1 | cut -c1-220)"
  done
  cat "$WORK"/results/*/progress 2>/dev/null
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
}
while [ $SECONDS -lt $end ]; do
  all=1
  for f in ${DONE_FILES:-}; do [ -e "$f" ] || all=0; done
  [ -n "${DONE_FILES:-}" ] && [ $all = 1 ] && break
  status
  sleep "$EVERY"
done
status
