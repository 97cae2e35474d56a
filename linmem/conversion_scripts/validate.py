"""`linmem validate`: prove a conversion.

fla sources: the converted model must compute the source backbone exactly at step 0. The reference is
the source checkpoint loaded 1:1 into linmem's plain backbone (the same fla parameter names, the plain
GLA / Gated DeltaNet op; for DeltaNet a GDN whose decay is exactly 1), and the checks are fp32 logits
equality (max |delta| <= tolerance) for a chunked forward (longer than one 64-token chunk), token-by-token
decode, a left-padded batch and greedy generation, plus a backward pass: every new scale parameter has a
non-zero gradient at step 0, and the parameters it gates (zero gradient while the scale is exactly 0)
receive a non-zero gradient as soon as the scale moves.

softmax sources: a per-layer table of the MSE between each student mixer and the teacher's attention on
the teacher's own inputs, and the perplexity of teacher and student on a fixed text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..modeling.compat import cache_of
from .alignment import capture_teacher_attention, layer_alignment_losses
from .convert import build_model
from .fla import plan_fla
from .losses import next_token_nll
from .report import append_checks
from .source import ConversionError, open_source

#: fp32 agreement between two execution paths of one model (chunked vs step kernels, packed varlen vs
#: dense): a property of the kernels, reported next to the conversion checks with this looser bound.
CONSISTENCY_TOLERANCE = 1e-4
# Parameters that gate a new mechanism (scale) -> the parameters they gate.
GATES = {"ccq_scale": ("ccq_w", "ccq_b"), "lamb_scale": ("lamb_proj.weight",)}


def _load_converted(directory: str | Path, device: str):
    from transformers import AutoModelForCausalLM

    import linmem  # noqa: F401

    model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32).to(device).eval()
    record = getattr(model.config, "conversion", None)
    if not isinstance(record, dict):
        raise ConversionError(f"{directory} has no `conversion` record in config.json: not a converted checkpoint")
    return model, record


def _check(name: str, diff: float, tolerance: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "max_abs_diff": diff, "tolerance": tolerance, "passed": bool(diff <= tolerance), **extra}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def fla_reference_model(base: str, target: str, device: str = "cpu", revision: str | None = None):
    """The fla checkpoint loaded 1:1 into linmem's plain backbone (fp32, eval)."""
    source = open_source(base, revision)
    plan = plan_fla(source, "backbone")
    model, _ = build_model(plan, source)
    return model.to(device).eval()


@torch.no_grad()
def _logit_checks(reference, converted, vocab: int, seq_len: int, new_tokens: int, tolerance: float,
                  device: str, generator: torch.Generator) -> list[dict[str, Any]]:
    checks = []
    ids = torch.randint(3, vocab, (2, seq_len), generator=generator).to(device)
    ref = reference(input_ids=ids, use_cache=False).logits
    out = converted(input_ids=ids, use_cache=False).logits
    checks.append(_check(f"chunked forward logits (B=2, T={seq_len})", _max_diff(out, ref), tolerance))

    steps = min(seq_len, 24)
    decoded = {}
    for label, model in (("reference", reference), ("converted", converted)):
        cache, outputs = None, []
        for t in range(steps):
            step = model(input_ids=ids[:, t:t + 1], past_key_values=cache, use_cache=True)
            cache = cache_of(step)
            outputs.append(step.logits)
        decoded[label] = torch.cat(outputs, 1)
    checks.append(_check(f"token-by-token decode logits ({steps} steps)",
                         _max_diff(decoded["converted"], decoded["reference"]), tolerance))
    checks.append(_check("consistency (not conversion): converted decode vs its own chunked forward",
                         _max_diff(decoded["converted"], out[:, :steps]), CONSISTENCY_TOLERANCE))

    lengths = [seq_len, seq_len - 7, 5]
    padded = torch.zeros(len(lengths), seq_len, dtype=torch.long, device=device)
    mask = torch.zeros_like(padded)
    rows = [torch.randint(3, vocab, (n,), generator=generator).to(device) for n in lengths]
    for r, row in enumerate(rows):
        padded[r, seq_len - len(row):] = row
        mask[r, seq_len - len(row):] = 1
    out_padded = converted(input_ids=padded, attention_mask=mask, use_cache=False).logits
    ref_padded = reference(input_ids=padded, attention_mask=mask, use_cache=False).logits
    real = mask.bool()
    checks.append(_check(f"left-padded batch logits (lengths {lengths})",
                         _max_diff(out_padded[real], ref_padded[real]), tolerance))
    worst = 0.0
    for r, row in enumerate(rows):
        alone = converted(input_ids=row[None], use_cache=False).logits[0]
        worst = max(worst, _max_diff(out_padded[r, seq_len - len(row):], alone))
    checks.append(_check("consistency (not conversion): converted padded rows vs each row alone", worst,
                         CONSISTENCY_TOLERANCE))

    prompt = ids[:, :8]
    kwargs = dict(max_new_tokens=new_tokens, do_sample=False, output_scores=True, return_dict_in_generate=True,
                  pad_token_id=0)
    ref_gen = reference.generate(prompt, **kwargs)
    out_gen = converted.generate(prompt, **kwargs)
    same = torch.equal(ref_gen.sequences, out_gen.sequences)
    score_diff = max(_max_diff(a, b) for a, b in zip(out_gen.scores, ref_gen.scores))
    checks.append({**_check(f"greedy generation ({new_tokens} tokens): scores", score_diff, tolerance),
                   "tokens_equal": same, "passed": bool(same and score_diff <= tolerance)})
    return checks


def _gradient_checks(converted, vocab: int, seq_len: int, device: str, generator: torch.Generator,
                     new_keys: list[str]) -> list[dict[str, Any]]:
    """Gradients of a language-model loss on every new parameter (at init, and with the scales moved)."""
    ids = torch.randint(3, vocab, (2, seq_len), generator=generator).to(device)
    params = dict(converted.named_parameters())

    def grad_norms() -> dict[str, float]:
        converted.zero_grad(set_to_none=True)
        loss = converted(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        return {k: (params[k].grad.norm().item() if params[k].grad is not None else 0.0) for k in new_keys if k in params}

    converted.train()
    at_init = grad_norms()
    scale_keys = [k for k in at_init if k.rsplit(".", 1)[-1] in GATES]
    gated_keys = [k for k in at_init if k not in scale_keys]
    checks = [{"name": "non-zero gradient at step 0 on every new scale parameter",
               "grad_norms": {k: at_init[k] for k in scale_keys},
               "passed": bool(scale_keys) and all(at_init[k] > 0 for k in scale_keys)}]
    saved = {k: params[k].detach().clone() for k in scale_keys}
    with torch.no_grad():
        for k in scale_keys:
            params[k].fill_(0.5)
    moved = grad_norms()
    with torch.no_grad():
        for k in scale_keys:
            params[k].copy_(saved[k])
    converted.zero_grad(set_to_none=True)
    converted.eval()
    checks.append({"name": "gated new parameters: gradient at step 0 (exactly 0 while the scale is 0) and "
                           "non-zero once the scale is 0.5",
                   "grad_norms_at_init": {k: at_init[k] for k in gated_keys},
                   "grad_norms_scale_moved": {k: moved[k] for k in gated_keys},
                   "passed": all(moved[k] > 0 for k in gated_keys)})
    return checks


def validate_fla(base: str, converted_dir: str | Path, *, tolerance: float = 1e-5, seq_len: int = 80,
                 new_tokens: int = 8, device: str = "cpu", seed: int = 0, revision: str | None = None) -> list[dict[str, Any]]:
    converted, record = _load_converted(converted_dir, device)
    reference = fla_reference_model(base, record["target"], device, revision)
    generator = torch.Generator().manual_seed(seed)
    vocab = converted.config.vocab_size
    checks = _logit_checks(reference, converted, vocab, seq_len, new_tokens, tolerance, device, generator)
    report_file = Path(converted_dir) / "conversion_report.json"
    new_keys = [n["target"] for n in json.loads(report_file.read_text())["new"]] if report_file.is_file() else [
        k for k, _ in converted.named_parameters() if k.rsplit(".", 1)[-1] in ("ccq_w", "ccq_b", "ccq_scale", "lamb_scale")
        or k.endswith("lamb_proj.weight")]
    checks += _gradient_checks(converted, vocab, min(seq_len, 24), device, generator, new_keys)
    return checks


def default_text() -> str:
    """A fixed English text that ships with Python (pydoc topics), for perplexity."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))[:20000]


@torch.no_grad()
def perplexity(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> float:
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    total, count = next_token_nll(logits, input_ids, attention_mask)
    return float(torch.exp(total / count.clamp_min(1)))


@torch.no_grad()
def heldout_perplexity(model, ids, *, seq_len: int = 1024, batch_size: int = 8, max_tokens: int | None = None,
                       device: str | torch.device = "cpu") -> dict[str, float]:
    """{"perplexity", "tokens"}: exp(mean next-token NLL) over consecutive `seq_len` blocks of 1-D token ids.

    ids: a 1-D integer array or tensor (e.g. `prepare-data`'s eval.npy); the tail shorter than one block
    and anything past `max_tokens` are left out. Each block is scored on its own (no carried state).
    """
    from tqdm.auto import tqdm

    ids = torch.as_tensor(np.asarray(ids[: max_tokens] if max_tokens else ids, dtype=np.int64))
    blocks = ids[: ids.numel() // seq_len * seq_len].reshape(-1, seq_len)
    if blocks.shape[0] == 0:
        raise ValueError(f"need at least seq_len = {seq_len} tokens, got {ids.numel()}")
    model.eval()
    total, count = 0.0, 0.0
    for lo in tqdm(range(0, blocks.shape[0], batch_size), desc="perplexity", unit="batch"):
        batch = blocks[lo:lo + batch_size].to(device)
        nll, n = next_token_nll(model(input_ids=batch, use_cache=False).logits, batch, None)
        total, count = total + float(nll), count + float(n)
    return {"perplexity": math.exp(total / count), "tokens": int(blocks.numel())}


def fixed_text_batch(tokenizer, text: str | None, seq_len: int, rows: int) -> torch.Tensor:
    """`rows` consecutive blocks of `seq_len` tokens of the fixed text: [rows, seq_len]."""
    ids = tokenizer(text or default_text(), return_tensors="pt", add_special_tokens=False).input_ids[0]
    if ids.numel() < rows * seq_len:
        raise ValueError(f"the text has {ids.numel()} tokens; need rows*seq_len = {rows * seq_len}")
    return ids[: rows * seq_len].reshape(rows, seq_len)


@torch.no_grad()
def validate_softmax(base: str, converted_dir: str | Path, *, text: str | None = None, seq_len: int = 128,
                     rows: int = 4, device: str = "cpu") -> list[dict[str, Any]]:
    """Per-layer attention-output MSE table and teacher/student perplexity on a fixed text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    student, _ = _load_converted(converted_dir, device)
    teacher = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(converted_dir))
    ids = fixed_text_batch(tokenizer, text, seq_len, rows).to(device)
    layers = list(range(student.config.num_hidden_layers))
    captured, _ = capture_teacher_attention(teacher, ids, None, layers)
    mse = {i: float(v) for i, v in layer_alignment_losses(student, captured, None).items()}
    return [
        {"name": "per-layer attention-output MSE (student mixer vs teacher attention, teacher inputs)",
         "mse": mse, "softmax_layers": list(student.config.attn_layers)},
        {"name": f"perplexity on the fixed text ({rows} x {seq_len} tokens)",
         "teacher": perplexity(teacher, ids), "student": perplexity(student, ids)},
    ]


def validate(base: str, converted_dir: str | Path, **kwargs: Any) -> list[dict[str, Any]]:
    """Run the checks matching the source kind; append them to conversion_report.json as `validation`."""
    record = json.loads((Path(converted_dir) / "config.json").read_text()).get("conversion")
    if not isinstance(record, dict):
        raise ConversionError(f"{converted_dir}/config.json has no `conversion` record")
    from .fla import FLA_MODEL_TYPES

    if record["source_model_type"] in FLA_MODEL_TYPES:
        checks = validate_fla(base, converted_dir, **kwargs)
    else:
        checks = validate_softmax(base, converted_dir, **kwargs)
    append_checks(converted_dir, "validation", checks)
    return checks
