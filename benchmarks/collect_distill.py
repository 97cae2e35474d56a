"""Gather a `distill_smollm2_gpu.sh` run into one JSON (benchmarks/results/distill-smollm2.json).

    python benchmarks/collect_distill.py WORK_DIR OUT.json [--note TEXT]

WORK_DIR holds results/<target>/{converted,stage1,stage2}.{ppl,lambada,validate}.json, results/teacher/,
and <target>-stage{1,2}/{distill_log.jsonl, checkpoint/distill_state.json}. A missing file is reported
as missing, never filled in.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _metrics(results: Path, name: str) -> dict:
    ppl, lam, val = (_read(results / f"{name}.{kind}.json") for kind in ("ppl", "lambada", "validate"))
    out = {"heldout_perplexity": ppl["perplexity"] if ppl else "missing (evaluation cut by the session's GPU time)",
           "lambada_accuracy": lam["accuracy"] if lam else "missing",
           "lambada_perplexity": lam["perplexity"] if lam else "missing"}
    if val:
        linear = [v for k, v in val[0]["mse"].items() if int(k) not in val[0]["softmax_layers"]]
        out["attention_output_mse_mean_over_linear_layers"] = sum(linear) / len(linear)
    return out


def _stage(work: Path, target: str, n: int) -> dict:
    folder = work / f"{target}-stage{n}"
    state = _read(folder / "checkpoint" / "distill_state.json") or {}
    config = state.get("config", {})
    evals = {}
    for line in (folder / "distill_log.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "eval_kl" in entry:
            evals[entry["step"]] = {k: entry[k] for k in ("step", "loss", "eval_loss", "eval_kl", "student_ppl",
                                                           "teacher_ppl")}
    steps = config.get("steps", 0)
    return {"steps": steps, "tokens": steps * config.get("batch_size", 0) * config.get("seq_len", 0),
            "settings": {k: config.get(k) for k in ("batch_size", "seq_len", "lr", "warmup_steps", "mixed_precision",
                                                    "data", "eval_batches")},
            "periodic_eval": list(evals.values())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work")
    parser.add_argument("out")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    work = Path(args.work)
    result = {"teacher": _metrics(work / "results" / "teacher", "teacher"), "students": {}, "notes": args.note}
    for target in ("qdelta", "ccq-gdn"):
        results = work / "results" / target
        if not results.is_dir():
            continue
        stages = {n: _stage(work, target, n) for n in (1, 2)}
        result["students"][target] = {
            "converted": _metrics(results, "converted"),
            "stage1": {**_metrics(results, "stage1"), **stages[1]},
            "stage2": {**_metrics(results, "stage2"), **stages[2]},
            "total_training_tokens": stages[1]["tokens"] + stages[2]["tokens"],
        }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({t: {s: {k: v for k, v in m.items() if k in ("heldout_perplexity", "lambada_accuracy")}
                          for s, m in d.items() if isinstance(m, dict)} for t, d in result["students"].items()},
                     indent=1))


if __name__ == "__main__":
    main()
