"""Model-level invariants on CUDA, where prefill runs the Triton chunk kernels and decode the step kernels.

Run on a GPU: python -m pytest -m gpu tests/test_model_gpu.py -q
Tolerances: bf16 logits relative RMS <= 2e-2 (bf16 activations through 2 layers), fp32 logits <= 1e-4;
generations compared token for token in fp32.
"""

from __future__ import annotations

import pytest
import torch

from linmem.kernels import relative_rms

from .variants import VARIANTS, make_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
TOL = {torch.bfloat16: 2e-2, torch.float32: 1e-4}


def cuda_model(name: str, dtype: torch.dtype):
    return make_model(name, dtype=torch.float32, head_dim=64, expand_v=1, hidden_size=128,
                      num_heads=2).to("cuda", dtype)


def ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, 96, (batch, length), generator=torch.Generator().manual_seed(seed)).cuda()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_prefill_equals_decode_and_left_padding(name, dtype):
    model = cuda_model(name, dtype)
    x = ids(2, 200)
    with torch.no_grad():
        full = model(x).logits.float()
        out = model(x[:, :130], use_cache=True)
        pieces = [out.logits]
        for t in range(130, 200):
            out = model(x[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
            pieces.append(out.logits)
        assert relative_rms(torch.cat(pieces, 1).float(), full) <= TOL[dtype]
        # left padding: row 1 is a shorter prompt padded on the left
        mask = torch.ones_like(x[:, :150])
        mask[1, :37] = 0
        padded = model(x[:, :150], attention_mask=mask).logits.float()
        alone = model(x[1:, 37:150]).logits.float()
        assert relative_rms(padded[1, 37:], alone[0]) <= TOL[dtype]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_generation_with_cache_equals_without_fp32(name):
    model = cuda_model(name, torch.float32)
    prompt = ids(2, 90, seed=3)
    for kwargs in (dict(do_sample=False), dict(num_beams=3, do_sample=False)):
        cached = model.generate(prompt, max_new_tokens=12, use_cache=True, pad_token_id=0, eos_token_id=None, **kwargs)
        plain = model.generate(prompt, max_new_tokens=12, use_cache=False, pad_token_id=0, eos_token_id=None, **kwargs)
        assert torch.equal(cached, plain), (name, kwargs)


def test_training_step_runs_on_triton_with_finite_grads():
    model = cuda_model("ccq-gdn-hybrid", torch.bfloat16).train()
    x = ids(4, 512)
    loss = model(x, labels=x).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
