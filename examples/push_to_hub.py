"""Push a linmem model and its tokenizer to the Hugging Face Hub (or any Hub-compatible server).

    # a saved model directory (e.g. from `linmem demo` or a fine-tune):
    python examples/push_to_hub.py --repo-id you/ccq-gdn-small --model-dir ./my-model
    # or a fresh small model of one architecture plus a BPE tokenizer trained on the Python docs:
    python examples/push_to_hub.py --repo-id you/qdelta-tiny --arch qdelta --hidden-size 128 --layers 4

The Hub is https://huggingface.co unless HF_ENDPOINT points elsewhere; log in with `hf auth login` or set
HF_TOKEN. The checkpoint carries remote code and a model card, so anyone can load it with
`AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True)`, with or without linmem.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import linmem
from linmem.demo import load_corpus, train_tokenizer

ARCHITECTURES = {
    "ccq-gdn": lambda **kw: linmem.CCQConfig(backbone="gated_deltanet", **kw),
    "ccq-gla": lambda **kw: linmem.CCQConfig(backbone="gla", **kw),
    "qdelta": lambda **kw: linmem.QDeltaConfig(**kw),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo-id", required=True, help="'user/name' (or 'org/name') on the Hub")
    parser.add_argument("--model-dir", help="a directory written by save_pretrained (model and tokenizer)")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="ccq-gdn", help="fresh model: architecture")
    parser.add_argument("--hidden-size", type=int, default=128, help="fresh model: width")
    parser.add_argument("--layers", type=int, default=4, help="fresh model: number of blocks")
    parser.add_argument("--heads", type=int, default=2, help="fresh model: heads")
    parser.add_argument("--vocab-size", type=int, default=2048, help="fresh model: BPE vocabulary trained on pydoc_data")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", help="push to this branch (created if missing)")
    parser.add_argument("--commit-message", default=None)
    return parser.parse_args(argv)


def fresh_model(args: argparse.Namespace):
    tokenizer = train_tokenizer(load_corpus(), args.vocab_size)
    config = ARCHITECTURES[args.arch](
        vocab_size=len(tokenizer), hidden_size=args.hidden_size, num_hidden_layers=args.layers,
        num_heads=args.heads, head_dim=args.hidden_size // args.heads // 2, expand_v=2, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config), tokenizer


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    if args.model_dir:
        model = AutoModelForCausalLM.from_pretrained(args.model_dir)
        tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    else:
        model, tokenizer = fresh_model(args)
    metadata = getattr(model, "training_metadata", None) or {"note": "untrained" if not args.model_dir else "see source"}
    commit = model.push_to_hub(args.repo_id, private=args.private, revision=args.revision,
                               commit_message=args.commit_message, training_metadata=metadata)
    tokenizer.push_to_hub(args.repo_id, revision=args.revision)  # after the model: keeps its model card
    print(f"pushed {type(model).__name__} ({model.num_parameters():,} parameters) to {commit.commit_url}")
    print(f"commit {commit.oid}; load it with:")
    print(f'  AutoModelForCausalLM.from_pretrained("{args.repo_id}", revision="{commit.oid}")'
          f"  # after `import linmem`, or with trust_remote_code=True")
    return commit.oid


if __name__ == "__main__":
    main()
