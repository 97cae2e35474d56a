"""GPU (`-m gpu`, skipped without CUDA): remote code without linmem runs the Triton kernels and matches linmem.

Every architecture is pushed to the local Hub; a child process where `import linmem` fails loads each with
`trust_remote_code=True` on CUDA, and must (1) have imported its own flattened Triton modules
(`linmem_kernels_*_triton_chunk`, a decode-step module during generate), (2) give the logits and the greedy
generation of the native linmem model on the same GPU, (3) for at least one architecture, run without any
"falling back to the PyTorch chunk implementation" warning (ops whose Triton kernel is not written yet fall
back in the package too). Prints one summary line per architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from linmem.kernels.utils import relative_rms
from tests.conftest_hub import LocalHub, local_hub  # noqa: F401  (fixture)
from tests.hub_subprocess import run_without_linmem
from tests.variants import VARIANTS, make_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SIZES = dict(vocab_size=512, hidden_size=256, num_hidden_layers=2, num_heads=4, head_dim=64, intermediate_size=512)

CHILD = '''
import json, sys, warnings, torch
from transformers import AutoModelForCausalLM

args = json.loads(open({args_path!r}).read())
ids, mask = torch.tensor(args["ids"]).cuda(), torch.tensor(args["mask"]).cuda()
results = {{}}
for name in args["names"]:
    model = AutoModelForCausalLM.from_pretrained("user/" + name, trust_remote_code=True, dtype=torch.float32).cuda().eval()
    package = type(model).__module__.rpartition(".")[0]  # this checkpoint's own copy of the code
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        logits = model(ids, attention_mask=mask).logits.float().cpu()
        generated = model.generate(ids, attention_mask=mask, max_new_tokens=16, do_sample=False, pad_token_id=0).cpu()
    triton_modules = sorted(m.rsplit(".", 1)[-1] for m in sys.modules if m.startswith(package + ".") and "_triton_" in m)
    fallbacks = sorted(str(w.message) for w in caught if "falling back" in str(w.message))
    results[name] = {{"logits": logits, "generated": generated, "triton_modules": triton_modules,
                     "fallbacks": fallbacks, "module": type(model).__module__}}
torch.save(results, args["out"])
'''


def test_remote_code_uses_triton_and_matches(local_hub: LocalHub, tmp_path: Path) -> None:
    ids = torch.randint(3, SIZES["vocab_size"], (2, 200), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    ids[1, :37], mask[1, :37] = 0, 0
    reference = {}
    for name in VARIANTS:
        model = make_model(name, dtype=torch.float32, seed=0, **SIZES)
        model.push_to_hub(f"user/{name}")
        model = model.cuda()
        with torch.no_grad():
            logits = model(ids.cuda(), attention_mask=mask.cuda()).logits.float().cpu()
            generated = model.generate(ids.cuda(), attention_mask=mask.cuda(), max_new_tokens=16, do_sample=False,
                                       pad_token_id=0).cpu()
        reference[name] = (logits, generated)
    args = {"ids": ids.tolist(), "mask": mask.tolist(), "names": list(VARIANTS), "out": str(tmp_path / "out.pt")}
    (tmp_path / "args.json").write_text(json.dumps(args))
    run_without_linmem(CHILD.format(args_path=str(tmp_path / "args.json")), local_hub, timeout=900)
    results = torch.load(tmp_path / "out.pt")
    without_fallback = []
    for name in VARIANTS:
        got, (logits, generated) = results[name], reference[name]
        error = relative_rms(got["logits"], logits)
        same_generation = torch.equal(got["generated"], generated)
        print(f"{name}: {got['module']} triton modules {got['triton_modules']} fallbacks {got['fallbacks']} "
              f"rrms(remote, native)={error:.2e} generation equal={same_generation}")
        assert got["module"].startswith("transformers_modules.")
        assert any(m.endswith("_triton_chunk") for m in got["triton_modules"]), got["triton_modules"]
        if not got["fallbacks"]:
            without_fallback.append(name)
        assert error <= 1e-6, (name, error)
        assert same_generation, name
    print(f"architectures on Triton end to end (no PyTorch fallback): {without_fallback}")
    assert without_fallback, "no architecture ran on Triton kernels only"
