#!/usr/bin/env bash
# Watch background GPU jobs (tests, distillation) for up to $1 seconds; return early once every
# file named in $DONE_FILES exists. Prints a short status every $EVERY seconds.
LIMIT=${1:-500} EVERY=${EVERY:-60} WORK=${WORK:-/root/distill}
end=$((SECONDS + LIMIT))
status() {
  echo "== $(date -u +%T)"
  [ -f /root/tests.log ] && { grep -c PASSED /root/tests.log | sed 's/^/tests passed: /'; grep "^FAILED\|Error" /root/tests.log | tail -8; tail -c 300 /root/tests.log | tr '\r' '\n' | tail -2; }
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
