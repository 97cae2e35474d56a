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


def _assert_compiled_step_matches_eager(model, batch: dict) -> None:
    """Loss and every gradient of model(**batch) compiled with Inductor (fullgraph) as eager's, fp32 (relative RMS
    <= 1e-4: Inductor only reorders the glue's float32 sums)."""
    runs = []
    for step in (model, torch.compile(model, fullgraph=True)):
        model.zero_grad(set_to_none=True)
        loss = step(**batch).loss
        loss.backward()
        runs.append((loss.detach(), [p.grad for p in model.parameters()]))
    (loss, grads), (compiled_loss, compiled_grads) = runs
    assert relative_rms(compiled_loss, loss) <= 1e-5
    for (param_name, _), g, cg in zip(model.named_parameters(), grads, compiled_grads):
        assert relative_rms(cg, g) <= 1e-4, param_name


@pytest.mark.parametrize("name", ["ccq-gdn", "ccq-gla", "qdelta", "ccq-gdn-hybrid"])
def test_compiled_training_step_matches_eager(name):
    """One graph (the Triton kernels as opaque custom ops) for a dense batch."""
    x = ids(2, 300)
    _assert_compiled_step_matches_eager(cuda_model(name, torch.float32).train(), dict(input_ids=x, labels=x))


@pytest.mark.parametrize("name", ["ccq-gdn", "qdelta-hybrid"])
def test_compiled_padded_and_packed_batches_match_eager(name):
    """A padded batch (compiled: every position packed, the padding as one more sequence) and a packed row marked by
    cu_seq_lens_q, each one graph."""
    model = cuda_model(name, torch.float32).train()
    x = ids(2, 300)
    mask = torch.ones_like(x)
    mask[0, :77] = 0
    mask[1, 250:] = 0
    offsets = torch.tensor([0, 130, 131, 420, 600], dtype=torch.int32, device=x.device)
    _assert_compiled_step_matches_eager(model, dict(input_ids=x, attention_mask=mask,
                                                    labels=x.masked_fill(mask == 0, -100)))
    _assert_compiled_step_matches_eager(model, dict(input_ids=x.view(1, -1), labels=x.view(1, -1),
                                                    cu_seq_lens_q=offsets))


@pytest.mark.parametrize("name", ["ccq-gdn", "qdelta"])
def test_reduce_overhead_training_steps_match_eager(name, monkeypatch):
    """torch.compile(mode="reduce-overhead") over the one-graph step (Inductor's CUDA graphs, replayed from the
    third call): five AdamW steps on fresh batches give eager's losses and weights, fp32 (both on the PyTorch norm
    path, which compiled code takes, so that only the compilation differs)."""
    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")
    torch.manual_seed(0)
    eager = cuda_model(name, torch.float32).train()
    compiled = cuda_model(name, torch.float32).train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(mode="reduce-overhead", fullgraph=True)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (eager, compiled)]
    for step in range(5):
        x = ids(2, 300, seed=10 + step)
        losses = []
        for model, optimizer in zip((eager, compiled), optimizers):
            torch.compiler.cudagraph_mark_step_begin()
            loss = model(x, labels=x).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().clone())
        assert relative_rms(losses[1], losses[0]) <= 1e-4, (step, losses)
    for (param_name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert relative_rms(q, p) <= 1e-4, param_name


def test_trainer_with_reduce_overhead_compile_equals_eager_trainer(tmp_path, monkeypatch):
    """Trainer(torch_compile=True, torch_compile_mode="reduce-overhead"): Inductor's CUDA graphs inside the Trainer's
    own loop (which zeroes gradients with set_to_none and calls no cudagraph_mark_step_begin) train to the eager
    Trainer's weights, fp32, PyTorch norm path on both sides."""
    from transformers import Trainer, TrainingArguments

    from .test_trainer import CountingRows

    monkeypatch.setenv("LINMEM_FUSED_NORM", "0")

    def run(out_dir, **compile_args):
        model = cuda_model("ccq-gdn", torch.float32).train()
        args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=8, max_steps=8,
                                 learning_rate=3e-3, report_to=[], disable_tqdm=True, seed=0, data_seed=0,
                                 save_strategy="no", **compile_args)
        Trainer(model=model, args=args, train_dataset=CountingRows(64, 128)).train()
        return model

    eager = run(tmp_path / "eager")
    compiled = run(tmp_path / "compiled", torch_compile=True, torch_compile_mode="reduce-overhead")
    for (param_name, p), q in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert relative_rms(q, p) <= 1e-4, param_name


AUTOCAST_KNOWN_GAP = pytest.mark.xfail(
    strict=True, reason="CCQ-GLA's Triton path under bf16 autocast: gradient error 0.059 against the PyTorch path's "
    "0.036 on the H200 (1.64x); it follows the GLA backbone's kernels, not the CCQ statistic (GLA on PyTorch with the "
    "statistic on Triton: 0.037; benchmarks/results/h200-2026-12-03-ccq-merged/autocast-bisect-h200.json)")


@pytest.mark.parametrize("name", [pytest.param(n, marks=AUTOCAST_KNOWN_GAP) if n == "ccq-gla" else n
                                  for n in VARIANTS])
def test_autocast_bf16_training_step_on_triton(name):
    """float32 weights under torch.autocast(bfloat16) (Trainer(bf16=True)): the Triton kernels get bf16 q/k/v and
    float32 gates; every gradient float32 and finite and the loss within 1e-3 of the float32 step's. The whole
    gradient's distance from the float32 step's is what bf16 rounding costs anyway: it must stay within 1.5x the
    distance of the same autocast step on the PyTorch chunk path (and within 0.1), so the kernels add no error
    of their own (tests/test_autocast.py: the CPU path against float32 directly)."""
    from linmem.kernels import use_backend

    model = cuda_model(name, torch.float32).train()
    x = ids(2, 300)

    def step(autocast: bool, backend: str):
        model.zero_grad(set_to_none=True)
        with use_backend(backend), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = model(x, labels=x).loss
        loss.backward()
        return loss.detach().float(), [p.grad.clone() for p in model.parameters()]

    loss, grads = step(False, "triton")
    mixed_loss, mixed_grads = step(True, "triton")
    _, torch_mixed_grads = step(True, "torch")
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in mixed_grads)
    assert relative_rms(mixed_loss, loss) <= 1e-3
    flat = torch.cat([g.flatten() for g in grads])
    triton_error = relative_rms(torch.cat([g.flatten() for g in mixed_grads]), flat)
    torch_error = relative_rms(torch.cat([g.flatten() for g in torch_mixed_grads]), flat)
    print(f"{name}: bf16 autocast gradient error {triton_error:.3e} (Triton) vs {torch_error:.3e} (PyTorch path)")
    assert triton_error <= min(1.5 * torch_error, 0.1), (triton_error, torch_error)


RECURRENT = [name for name in VARIANTS if "hybrid" not in name]


@pytest.mark.parametrize("name", RECURRENT)
def test_cuda_graph_decode_equals_eager(name):
    """cuda_graph_decode replays one captured step per cache: the same tokens (greedy, beam, sampling) and
    logits as eager decode, one capture per generate (beam reorders keep the buffers), and a cache decoded by
    the graph goes on correctly in eager calls."""
    from linmem.modeling.decode_graph import DECODE_GRAPHS

    model = cuda_model(name, torch.float32)
    prompt = ids(2, 70, seed=5)
    settings = (dict(do_sample=False), dict(num_beams=3, do_sample=False), dict(do_sample=True, top_k=20))
    for kwargs in settings:
        runs = []
        for graph in (False, True):
            model.config.cuda_graph_decode = graph
            torch.manual_seed(0)
            runs.append(model.generate(prompt, max_new_tokens=10, pad_token_id=0, eos_token_id=None, **kwargs))
        assert torch.equal(runs[0], runs[1]), (name, kwargs)
        assert model in DECODE_GRAPHS, "the graph path was not taken"

    x = ids(2, 40, seed=6)
    with torch.no_grad():
        model.config.cuda_graph_decode = False
        full = model(x).logits
        model.config.cuda_graph_decode = True
        out = model(x[:, :20], use_cache=True)
        pieces, graphs = [out.logits], set()
        for t in range(20, 40):
            model.config.cuda_graph_decode = t < 30  # the last ten steps eagerly, on the graph-updated cache
            out = model(x[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
            pieces.append(out.logits)
            graphs.add(id(DECODE_GRAPHS.get(model)))
        assert len(graphs) == 1, "the graph was captured more than once for one cache"
        assert relative_rms(torch.cat(pieces, 1), full) <= TOL[torch.float32]


def test_cuda_graph_decode_skips_softmax_layers():
    from linmem.modeling.decode_graph import DECODE_GRAPHS

    model = cuda_model("qdelta-hybrid", torch.float32)
    model.config.cuda_graph_decode = True
    model.generate(ids(1, 20), max_new_tokens=4, pad_token_id=0, eos_token_id=None, do_sample=False)
    assert model not in DECODE_GRAPHS
