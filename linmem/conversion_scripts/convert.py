"""`convert`: plan, check, build and save a converted linmem checkpoint (the `linmem convert` command).

The output directory is a normal linmem checkpoint (`AutoModelForCausalLM.from_pretrained` loads it) with
the source's tokenizer files, a `conversion` record in config.json and `conversion_report.json`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from .fla import FLA_MODEL_TYPES, plan_fla
from .plan import MAPPING_VERSION, ConversionPlan, check_plan
from .report import REPORT_NAME, build_report, format_plan, write_report
from .gpt2 import plan_gpt2
from .softmax import plan_softmax
from .source import ConversionError, SourceCheckpoint, open_source

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TARGETS = ("ccq-gla", "ccq-gdn", "qdelta")


def make_plan(source: SourceCheckpoint, target: str, *, keep_softmax_layers: list[int] | None = None,
              hybrid_every: int | None = None, ccq_init_scale: float | None = None,
              lamb_init_scale: float | None = None) -> ConversionPlan:
    """fla sources start the new mechanism at its exact no-op (0.0); softmax sources at the from-scratch 1.0."""
    if source.model_type in FLA_MODEL_TYPES:
        if keep_softmax_layers or hybrid_every:
            raise ConversionError(
                "`--keep-softmax-layers` / `--hybrid-every` apply to softmax sources; an fla source keeps its own "
                "`attn` layers"
            )
        return plan_fla(source, target, ccq_init_scale=0.0 if ccq_init_scale is None else ccq_init_scale,
                        lamb_init_scale=0.0 if lamb_init_scale is None else lamb_init_scale)
    plan_fn = plan_gpt2 if source.model_type == "gpt2" else plan_softmax
    return plan_fn(source, target, keep_softmax_layers=keep_softmax_layers, hybrid_every=hybrid_every,
                   ccq_init_scale=1.0 if ccq_init_scale is None else ccq_init_scale,
                   lamb_init_scale=1.0 if lamb_init_scale is None else lamb_init_scale)


def conversion_record(plan: ConversionPlan, source: SourceCheckpoint, seed: int, hashes: dict[str, str] | None) -> dict[str, Any]:
    return {
        "source_id": source.source_id,
        "source_revision": source.revision,
        "source_model_type": source.model_type,
        "source_sha256": hashes,
        "mapping_version": MAPPING_VERSION,
        "target": plan.target_name,
        "kept_softmax_layers": plan.kept_softmax_layers,
        "seed": seed,
    }


def build_model(plan: ConversionPlan, source: SourceCheckpoint, seed: int = 0) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """Instantiate the target model in float32, fill it from the source, initialise the new tensors.

    Returns (model, checks): the checks record that copied tensors are bit-exact and declared
    initialisations hold.
    """
    from transformers import AutoModelForCausalLM

    import linmem  # noqa: F401  (registers the architectures)

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(plan.target_config, dtype=torch.float32)
    state = {}
    for target, rule in plan.rules.items():
        state[target] = rule.build([source.tensor(key).float() for key in rule.sources]).contiguous()
    result = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if plan.target_config.tie_word_embeddings else set()
    missing = set(result.missing_keys) - tied
    if set(result.unexpected_keys):
        raise ConversionError(f"the linmem model rejected key(s) {sorted(result.unexpected_keys)}")
    if missing != set(plan.new):
        raise ConversionError(f"keys left unfilled differ from the declared new keys: {sorted(missing ^ set(plan.new))}")

    params = dict(model.state_dict())
    with torch.no_grad():
        for target, new in plan.new.items():
            if new.init is not None:
                new.init(params[target])
    worst = 0.0
    for target, rule in plan.rules.items():
        if rule.action == "copied":
            worst = max(worst, (params[target] - state[target]).abs().max().item() if state[target].numel() else 0.0)
    checks = [{"name": "copied tensors equal the source (float32)", "max_abs_diff": worst, "tolerance": 0.0,
               "passed": worst == 0.0}]
    failed = [t for t, n in plan.new.items() if n.check is not None and not n.check(params[t])]
    checks.append({"name": "new tensors hold their declared init", "failed": failed, "passed": not failed})
    if failed:
        raise ConversionError(f"new tensor(s) do not hold their declared initialisation: {failed}")
    return model, checks


def convert(
    source: str,
    target: str,
    output: str | Path | None = None,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    keep_softmax_layers: list[int] | None = None,
    hybrid_every: int | None = None,
    ccq_init_scale: float | None = None,
    lamb_init_scale: float | None = None,
    dry_run: bool = False,
    report_path: str | Path | None = None,
    seed: int = 0,
    hash_weights: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Convert `source` (a directory or Hub id) to `target`; return the report (also written unless dry run)."""
    if target not in TARGETS:
        raise ConversionError(f"`--target` must be one of {TARGETS}, got {target!r}")
    if dtype not in DTYPES:
        raise ConversionError(f"`--dtype` must be one of {tuple(DTYPES)}, got {dtype!r}")
    if output is None and not dry_run:
        raise ConversionError("`--output` is required unless `--dry-run` is given")
    checkpoint = open_source(source, revision)
    plan = make_plan(checkpoint, target, keep_softmax_layers=keep_softmax_layers, hybrid_every=hybrid_every,
                     ccq_init_scale=ccq_init_scale, lamb_init_scale=lamb_init_scale)
    target_shapes = check_plan(plan, checkpoint)
    hashes = checkpoint.weight_hashes() if hash_weights and not dry_run else None
    record = conversion_record(plan, checkpoint, seed, hashes)
    if dry_run:
        report = build_report(plan, checkpoint, target_shapes, record)
        if verbose:
            print(format_plan(report))
        if report_path is not None:
            write_report(report, report_path)
        return report

    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise ConversionError(f"`--output` directory {output} exists and is not empty")
    model, checks = build_model(plan, checkpoint, seed)
    model = model.to(DTYPES[dtype])
    model.config.conversion = record
    model.save_pretrained(output)
    for file in checkpoint.tokenizer_files():
        shutil.copy2(file, output / file.name)
    report = build_report(plan, checkpoint, target_shapes, record, checks)
    report["tokenizer_files"] = [file.name for file in checkpoint.tokenizer_files()]
    write_report(report, output / REPORT_NAME)
    if report_path is not None:
        write_report(report, report_path)
    if verbose:
        counts = report["parameter_counts"]
        print(f"converted {source} -> {output} ({target}): {len(report['copied'])} copied, "
              f"{len(report['reshaped'])} reshaped, {len(report['new'])} new, {len(report['dropped'])} dropped; "
              f"{counts['target']:,} parameters")
    return report
