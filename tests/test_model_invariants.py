"""Model-level invariants for every registered architecture (CPU, float64 so equalities are tight)."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

from linmem import LinmemCache, cache_of

from .variants import VARIANTS, make_model

ATOL = 1e-9  # float64 end to end: only summation-order differences remain
ALL = list(VARIANTS)


def ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 96, (batch, length), generator=g)


@pytest.mark.parametrize("name", ALL)
def test_prefill_equals_token_by_token_decode(name):
    model = make_model(name)
    x = ids(2, 70)  # longer than one chunk of 64, not a multiple of it
    full = model(x).logits
    # token by token from the first token
    cache, steps = None, []
    for t in range(12):
        out = model(x[:, t : t + 1], past_key_values=cache, use_cache=True)
        cache = cache_of(out)
        steps.append(out.logits)
    # then a chunk that crosses the 64 boundary, then single tokens again
    for start, stop in ((12, 67), (67, 68), (68, 69), (69, 70)):
        out = model(x[:, start:stop], past_key_values=cache, use_cache=True)
        steps.append(out.logits)
    assert isinstance(cache, LinmemCache) and cache.get_seq_length() == 70
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_continuing_from_returned_cache_equals_fresh_run(name):
    model = make_model(name)
    x = ids(2, 40)
    full = model(x).logits
    first = model(x[:, :23], use_cache=True)
    second = model(x[:, 23:], past_key_values=first.past_key_values, use_cache=True)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ALL)
def test_left_padded_batch_equals_each_prompt_alone(name):
    model = make_model(name)
    prompts = [ids(1, 9, seed=2)[0], ids(1, 4, seed=3)[0], ids(1, 1, seed=4)[0]]
    width = max(len(p) for p in prompts)
    batch = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        batch[i, width - len(p):] = p
        mask[i, width - len(p):] = 1
    padded = model(batch, attention_mask=mask).logits
    for i, p in enumerate(prompts):
        alone = model(p[None]).logits
        torch.testing.assert_close(padded[i, width - len(p):], alone[0], atol=ATOL, rtol=0)
    # generation from the padded batch equals each prompt's own generation
    gen = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    for i, p in enumerate(prompts):
        own = model.generate(p[None], max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(gen[i, width:], own[0, len(p):]), (name, i)


@pytest.mark.parametrize("name", ALL)
def test_inputs_embeds_from_the_input_embeddings_equal_input_ids(name):
    """inputs_embeds = get_input_embeddings()(ids) (PEFT prompt tuning, generate from embeddings) is what the blocks
    see for ids, scaled embeddings (Gemma3-style embedding_multiplier) included; padded, and in generate."""
    model = make_model(name)
    batch = ids(2, 8, seed=7)
    mask = torch.ones_like(batch)
    mask[1, :3] = 0
    embeds = model.get_input_embeddings()(batch)
    torch.testing.assert_close(model(inputs_embeds=embeds, attention_mask=mask).logits,
                               model(batch, attention_mask=mask).logits, atol=ATOL, rtol=0)
    kwargs = dict(attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(inputs_embeds=embeds, **kwargs), model.generate(batch, **kwargs)[:, 8:])


@pytest.mark.parametrize("name", ALL)
def test_padded_batch_under_inference_mode(name):
    """torch.inference_mode (serving, evaluation harnesses) gives what no_grad gives, padded batches included
    (their packed cu_seqlens are inference tensors, without the version counter the ops' memo reads)."""
    model = make_model(name)
    batch = ids(2, 11, seed=6)
    mask = torch.ones_like(batch)
    mask[0, :4] = 0
    kwargs = dict(attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        logits, generated = model(batch, attention_mask=mask).logits, model.generate(batch, **kwargs)
    with torch.inference_mode():
        torch.testing.assert_close(model(batch, attention_mask=mask).logits, logits, atol=ATOL, rtol=0)
        assert torch.equal(model.generate(batch, **kwargs), generated)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode", ["greedy", "sample", "beam"])
def test_generate_with_cache_equals_without(name, mode):
    model = make_model(name)
    prompt = ids(2, 7, seed=5)
    kwargs = dict(max_new_tokens=8, pad_token_id=0, eos_token_id=None)
    if mode == "sample":
        kwargs.update(do_sample=True, top_k=20, temperature=0.9)
    elif mode == "beam":
        kwargs.update(num_beams=3, do_sample=False)
    else:
        kwargs.update(do_sample=False)
    torch.manual_seed(123)
    with_cache = model.generate(prompt, use_cache=True, **kwargs)
    torch.manual_seed(123)
    without_cache = model.generate(prompt, use_cache=False, **kwargs)
    assert with_cache.shape == (2, 15)
    assert torch.equal(with_cache, without_cache)


@pytest.mark.parametrize("name", ALL)
def test_save_load_round_trip_is_exact(name, tmp_path):
    model = make_model(name, dtype=torch.float32)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    x = ids(2, 13)
    assert torch.equal(model(x).logits, loaded(x).logits)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2), k1


@pytest.mark.parametrize("drafting", [dict(prompt_lookup_num_tokens=3), dict(assistant_early_exit=1), "assistant",
                                      "generation_config"])
def test_assisted_decoding_is_refused_with_a_clear_error(drafting):
    model = make_model("ccq-gdn")
    if drafting == "assistant":
        drafting = dict(assistant_model=make_model("ccq-gdn"))
    elif drafting == "generation_config":
        config = transformers.GenerationConfig(max_new_tokens=3, prompt_lookup_num_tokens=2, pad_token_id=0)
        drafting = dict(generation_config=config)
    with pytest.raises(ValueError, match="assisted .*decoding is unsupported"):
        model.generate(ids(1, 6), max_new_tokens=3, pad_token_id=0, **drafting)
    assert model.generate(ids(1, 6), max_new_tokens=3, pad_token_id=0).shape == (1, 9)


def test_cache_rules():
    model = make_model("ccq-gdn-hybrid")
    out = model(ids(1, 5), use_cache=True)
    cache = cache_of(out)
    assert cache.get_seq_length() == 5
    with pytest.raises(NotImplementedError, match="cannot be cropped"):
        cache.crop(3)
    assert cache.recurrent_state_bytes() > 0 and cache.attention_cache_bytes() > 0
    assert type(model)._supports_default_dynamic_cache() is False and model._is_stateful


def test_beam_reorder_keeps_state_storage():
    """Same-size reorders write into the cache's tensors (a decode CUDA graph bound to them stays valid)."""
    from linmem.modeling.decode_graph import state_tensors

    model = make_model("ccq-gdn")
    cache = cache_of(model(ids(3, 6), use_cache=True))
    before = [t.data_ptr() for t in state_tensors(cache)]
    expected = [t[[2, 0, 0]].clone() for t in state_tensors(cache)]
    cache.reorder_cache(torch.tensor([2, 0, 0]))
    assert [t.data_ptr() for t in state_tensors(cache)] == before
    assert all(torch.equal(t, e) for t, e in zip(state_tensors(cache), expected))
    cache.batch_select_indices(torch.tensor([1]))
    assert cache.recurrent_states[0][0].shape[0] == 1


def test_cuda_graph_decode_is_eager_off_cuda():
    """The flag only acts on CUDA (tests/test_model_gpu.py); on the CPU decode is the eager step, unchanged."""
    from linmem.modeling.decode_graph import DECODE_GRAPHS

    model = make_model("qdelta")
    plain = model.generate(ids(1, 8), max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=None)
    model.config.cuda_graph_decode = True
    flagged = model.generate(ids(1, 8), max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(plain, flagged) and model not in DECODE_GRAPHS


class _CudaIds:
    """Stands in for CUDA input ids on a CPU machine: graph_eligible reads only these."""

    is_cuda = True

    def __init__(self, *shape: int) -> None:
        self.shape = shape

    def dim(self) -> int:
        return len(self.shape)


@pytest.mark.parametrize("name,decode,expected", [
    ("qdelta", dict(), True), ("ccq-gla", dict(), True),
    ("qdelta", dict(flag=False), False), ("qdelta", dict(ids=(1, 2)), False), ("qdelta", dict(grad=True), False),
    ("qdelta", dict(extra=dict(labels=1)), False), ("qdelta", dict(extra=dict(output_hidden_states=True)), False),
    ("qdelta", dict(mask=[[1, 0]]), False), ("qdelta", dict(mask=[[0, 1]]), True), ("qdelta", dict(empty=True), False),
    ("qdelta-hybrid", dict(), False), ("ccq-gdn-hybrid", dict(), False), ("ccq-gla-hybrid-window", dict(), False),
])
def test_cuda_graph_decode_eligibility(name, decode, expected, monkeypatch):
    """Which calls the decode graph takes (the capture itself runs in tests/test_model_gpu.py): only one-token,
    no-grad steps of purely recurrent models on a filled cache, with the flag on and the new token unpadded."""
    from linmem.modeling.decode_graph import graph_eligible

    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    model = make_model(name)
    model.config.cuda_graph_decode = decode.get("flag", True)
    cache = LinmemCache(model.config.num_hidden_layers) if decode.get("empty") else cache_of(
        model(ids(1, 4), use_cache=True))
    mask = torch.tensor(decode["mask"]) if "mask" in decode else None
    with torch.set_grad_enabled(decode.get("grad", False)):
        eligible = graph_eligible(model, _CudaIds(*decode.get("ids", (1, 1))), mask, cache, decode.get("extra", {}))
    assert eligible is expected


def test_recurrent_state_size_is_independent_of_context_length():
    model = make_model("ccq-gdn")
    short = cache_of(model(ids(1, 5), use_cache=True)).recurrent_state_bytes()
    long = cache_of(model(ids(1, 150), use_cache=True)).recurrent_state_bytes()
    assert short == long > 0


def test_logits_to_keep_and_loss():
    model = make_model("ccq-gla", dtype=torch.float32)
    x = ids(2, 11)
    full = model(x, labels=x)
    last = model(x, logits_to_keep=1).logits
    torch.testing.assert_close(last, full.logits[:, -1:], atol=1e-6, rtol=0)
    manual = torch.nn.functional.cross_entropy(full.logits[:, :-1].reshape(-1, 96), x[:, 1:].reshape(-1))
    torch.testing.assert_close(full.loss, manual, atol=1e-6, rtol=0)
    summed = model(x, labels=x, num_items_in_batch=torch.tensor(40)).loss
    torch.testing.assert_close(summed, manual * 20 / 40, atol=1e-5, rtol=0)


@pytest.mark.parametrize("enable", ["gradient_checkpointing_enable", "activation_checkpointing_enable"])
def test_gradient_checkpointing_matches_plain_backward(enable):
    """Checkpointed layers run their forward again in the backward (counted), and the gradients equal the plain
    backward's. activation_checkpointing_enable (transformers >= 5.25, which deprecates the other name) with
    every_n_layers=2 checkpoints every other layer only."""
    model = make_model("ccq-gdn-hybrid", dtype=torch.float64).train()
    if not hasattr(model, enable):
        pytest.skip(f"transformers {transformers.__version__} has no {enable}")
    x = ids(2, 9)
    model(x, labels=x).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    layers = model.model.layers
    calls = [0] * len(layers)
    for i, layer in enumerate(layers):  # hooks on the layer itself stay outside the checkpoint: on its first part
        next(layer.children()).register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    if enable == "gradient_checkpointing_enable":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in transformers 5.25, kept until v6
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        recomputed = list(range(len(layers)))
    else:
        model.activation_checkpointing_enable({"use_reentrant": False}, every_n_layers=2)
        recomputed = list(range(0, len(layers), 2))
    model(x, labels=x).loss.backward()
    assert calls == [2 if i in recomputed else 1 for i in range(len(layers))]
    for n, p in model.named_parameters():
        if n in plain:
            torch.testing.assert_close(p.grad, plain[n], atol=1e-10, rtol=0, msg=n)


@pytest.mark.parametrize("backbone", ["gla", "gated_deltanet"])
def test_ccq_init_scale_zero_is_exactly_the_backbone(backbone):
    name = "ccq-gla" if backbone == "gla" else "ccq-gdn"
    ccq = make_model(name, ccq_init_scale=0.0)
    plain = make_model(name, ccq=False)
    loaded = plain.load_state_dict(ccq.state_dict(), strict=False)
    assert sorted(loaded.unexpected_keys) == sorted(k for k in ccq.state_dict() if ".ccq_" in k)
    assert not loaded.missing_keys
    x = ids(2, 30)
    torch.testing.assert_close(ccq(x).logits, plain(x).logits, atol=1e-12, rtol=0)
    # ... while CCQ at scale 1 changes the output, and the scale receives a gradient at 0
    active = make_model(name, ccq_init_scale=1.0)
    active.load_state_dict({k: v for k, v in ccq.state_dict().items() if "ccq_scale" not in k}, strict=False)
    assert (active(x).logits - plain(x).logits).abs().max() > 1e-4
    ccq.train()
    ccq(x, labels=x).loss.backward()
    assert all(p.grad.abs().sum() > 0 for n, p in ccq.named_parameters() if n.endswith("ccq_scale"))


def test_qdelta_lamb_init_scale_zero_is_exactly_gated_deltanet():
    qd = make_model("qdelta", lamb_init_scale=0.0)
    gdn = make_model("ccq-gdn", ccq=False)
    state = {k: v for k, v in qd.state_dict().items() if "lamb_" not in k}
    gdn.load_state_dict(state, strict=True)
    x = ids(2, 30)
    torch.testing.assert_close(qd(x).logits, gdn(x).logits, atol=1e-10, rtol=0)
