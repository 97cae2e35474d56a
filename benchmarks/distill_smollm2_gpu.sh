#!/usr/bin/env bash
# Distil SmolLM2-135M into one hybrid student on one GPU: convert, stage 1, stage 2, then evaluate
# (held-out perplexity, LAMBADA, per-layer MSE) as converted, after stage 1 and after stage 2.
#   WORK=/root/distill bash benchmarks/distill_smollm2_gpu.sh qdelta|ccq-gdn|teacher
# Expects $WORK/teacher (benchmarks/gguf_teacher.py), $WORK/data/{stage1,stage2,eval}.npy and
# $WORK/lambada.jsonl.gz. Every step is resumable: rerunning skips what is done and resumes a cut stage.
set -uo pipefail
linmem() { python3 -m linmem "$@"; }
TARGET=$1
WORK=${WORK:-/root/distill}
BATCH=${BATCH:-16} SEQ=${SEQ:-1024} S1_STEPS=${S1_STEPS:-300} S2_STEPS=${S2_STEPS:-450}
EVAL_TOKENS=${EVAL_TOKENS:-262144}
TEACHER=$WORK/teacher DATA=$WORK/data
R=$WORK/results/$TARGET
mkdir -p "$R"
export PYTHONUNBUFFERED=1

evaluate() {  # name model_dir
  [ -f "$R/$1.lambada.json" ] && return
  linmem perplexity --model "$2" --data "$DATA/eval.npy" --seq-len "$SEQ" --batch-size 16 \
    --max-tokens "$EVAL_TOKENS" --device "${DEVICE:-cuda}" --output "$R/$1.ppl.json" > "$R/$1.eval.log" 2>&1
  if [ "$1" != teacher ]; then
    linmem validate --base "$TEACHER" --converted "$2" --device "${DEVICE:-cuda}" > "$R/$1.validate.json" 2>> "$R/$1.eval.log"
  fi
  linmem lambada --model "$2" --requests "$WORK/lambada.jsonl.gz" --batch-size 32 --device "${DEVICE:-cuda}" \
    ${LAMBADA_LIMIT:+--limit $LAMBADA_LIMIT} --output "$R/$1.lambada.json" >> "$R/$1.eval.log" 2>&1
}

stage() {  # n student output data lr
  for attempt in 1 2 3; do
    [ -f "$3/config.json" ] && return 0
    linmem distill --stage "$1" --teacher "$TEACHER" --student "$2" --output "$3" --data "$4" \
      --eval-data "$DATA/eval.npy" --steps "$6" --batch-size "$BATCH" --seq-len "$SEQ" --lr "$5" \
      --warmup-steps 20 --mixed-precision bf16 --eval-every 50 --eval-batches 8 --save-every 50 \
      --max-minutes "${STAGE_MINUTES:-12}" >> "$R/stage$1.log" 2>&1
  done
  [ -f "$3/config.json" ]
}

if [ "$TARGET" = teacher ]; then
  evaluate teacher "$TEACHER"
  exit 0
fi
S=$WORK/$TARGET
[ -f "$S/config.json" ] || linmem convert --source "$TEACHER" --target "$TARGET" --hybrid-every 6 --output "$S" \
  > "$R/convert.log" 2>&1 || exit 1
stage 1 "$S" "$S-stage1" "$DATA/stage1.npy" 1e-3 "$S1_STEPS" || exit 1
stage 2 "$S-stage1" "$S-stage2" "$DATA/stage2.npy" 3e-4 "$S2_STEPS" || exit 1
echo "$(date -u +%T) distilled" >> "$R/progress"
evaluate stage2 "$S-stage2"
evaluate stage1 "$S-stage1"
evaluate converted "$S"
echo "$(date -u +%T) done" >> "$R/progress"
