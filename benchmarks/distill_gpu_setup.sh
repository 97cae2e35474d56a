#!/usr/bin/env bash
# Build the distillation inputs on a GPU host without network, from files carried in pieces:
#   PARTS="a/teacher.gguf.part0 b/teacher.gguf.part1" TRAIN=train.npy.xz EVAL=eval.npy LAMBADA=requests.jsonl.gz \
#   SHA256=<sha of the joined GGUF> WORK=/root/distill bash benchmarks/distill_gpu_setup.sh
# -> $WORK/teacher (Transformers checkpoint), $WORK/data/{stage1,stage2,eval}.npy (stage 1 takes the first
#    S1_STEPS*BATCH*SEQ training tokens, stage 2 the rest: the two stages see different text), $WORK/lambada.jsonl.gz
set -euo pipefail
WORK=${WORK:-/root/distill}
BATCH=${BATCH:-16} SEQ=${SEQ:-1024} S1_STEPS=${S1_STEPS:-300}
mkdir -p "$WORK/data"
if [ ! -f "$WORK/teacher/config.json" ]; then
  cat $PARTS > "$WORK/teacher.gguf"
  echo "$SHA256  $WORK/teacher.gguf" | sha256sum -c -
  python3 "$(dirname "$0")/gguf_teacher.py" "$WORK/teacher.gguf" "$WORK/teacher"
fi
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
  "$TRAIN" "$WORK/data/train.npy"  # .xz, without needing the xz tool
cp "$EVAL" "$WORK/data/eval.npy"
cp "$LAMBADA" "$WORK/lambada.jsonl.gz"
python3 - "$WORK/data" "$((S1_STEPS * BATCH * SEQ))" <<'PY'
import sys, numpy as np
folder, n1 = sys.argv[1], int(sys.argv[2])
ids = np.load(f"{folder}/train.npy")
np.save(f"{folder}/stage1.npy", ids[:n1]); np.save(f"{folder}/stage2.npy", ids[n1:])
print(f"train {len(ids)} tokens: stage 1 {n1}, stage 2 {len(ids) - n1}")
PY
