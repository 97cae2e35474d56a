"""Generate text with a linmem model from the Hub (or a local directory), with or without linmem installed.

    python examples/generate.py you/ccq-gdn-small --prompt "The with statement" --max-new-tokens 40
    python examples/generate.py you/ccq-gdn-small --adapter you/ccq-gdn-small-lora     # a LoRA adapter on top
    python examples/generate.py you/ccq-gdn-small --trust-remote-code                   # the checkpoint's own code

When linmem is importable its classes are used; otherwise the checkpoint's remote code is (same logits).
Decoding keeps a fixed-size recurrent state per sequence, whatever the context length.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="Hub repo id ('user/name') or a local directory")
    parser.add_argument("--prompt", default="The", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--revision", help="branch, tag or commit sha of the model repo")
    parser.add_argument("--adapter", help="a PEFT LoRA adapter (repo id or directory) to apply")
    parser.add_argument("--sample", action="store_true", help="sample (temperature, top-p) instead of greedy")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="use the checkpoint's code even if linmem is installed")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def load(args: argparse.Namespace):
    trust_remote_code = args.trust_remote_code
    if not trust_remote_code:
        try:
            import linmem  # noqa: F401  (registers the architectures)
        except ImportError:
            print("linmem is not installed: using the checkpoint's remote code (trust_remote_code=True)")
            trust_remote_code = True
    model = AutoModelForCausalLM.from_pretrained(args.model, revision=args.revision,
                                                 trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.model, revision=args.revision)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    return model.to(args.device).eval(), tokenizer


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    model, tokenizer = load(args)
    inputs = tokenizer(args.prompt, return_tensors="pt").to(args.device)
    sampling = dict(do_sample=True, temperature=args.temperature, top_p=args.top_p) if args.sample else dict(do_sample=False)
    start = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=args.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                **sampling)
    seconds = time.perf_counter() - start
    new_tokens = output.shape[1] - inputs["input_ids"].shape[1]
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    print(f"[{type(model).__name__} from {type(model).__module__.split('.')[0]}] {new_tokens} tokens in "
          f"{seconds:.2f} s")
    print(text)
    return text


if __name__ == "__main__":
    main()
