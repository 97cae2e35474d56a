"""Every architecture through the local Hub: push, then load with linmem (native classes) and without it
(`trust_remote_code=True`, in a child process where `import linmem` fails): identical logits and greedy
generations, revision pinning, a clear error without trust_remote_code, re-export from remote code."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from transformers import AutoConfig, AutoModelForCausalLM

import linmem
from linmem.export.flatten import check_remote_files
from linmem.export.remote_code import remote_code_files
from linmem.kernels.utils import relative_rms
from tests.conftest_hub import LocalHub, local_hub_environment
from tests.hub_subprocess import run_without_linmem
from tests.variants import VARIANTS, make_model

NEW_TOKENS = 6
#: Architectures whose ops have Triton kernels today; run through the remote code under TRITON_INTERPRET=1.
TRITON_NAMES = ["ccq-gla", "qdelta"]


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of 10 tokens, the second left-padded by 3 (padding goes through the varlen path)."""
    ids = torch.randint(3, 96, (2, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    ids[1, :3], mask[1, :3] = 0, 0
    return ids, mask


def _run(model, ids, mask) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        generated = model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False,
                                   pad_token_id=0)
    return {"logits": logits, "generated": generated}


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> LocalHub:
    with local_hub_environment(tmp_path_factory.mktemp("hf_home")) as local:
        yield local


@pytest.fixture(scope="module")
def pushed(hub: LocalHub) -> dict[str, dict]:
    """Every architecture pushed once to user/<name>: reference outputs and the commit sha."""
    ids, mask = _inputs()
    out = {}
    for name in VARIANTS:
        model = make_model(name, dtype=torch.float32, seed=3)
        commit = model.push_to_hub(f"user/{name}", commit_message=f"{name} v1")
        out[name] = {"ref": _run(model, ids, mask), "sha": commit.oid, "class": type(model)}
    return out


def test_every_registered_architecture_is_covered() -> None:
    model_types = {VARIANTS[name]().model_type for name in VARIANTS}
    assert model_types == {config_class.model_type for config_class in linmem.ARCHITECTURES}


def test_checkpoint_files_and_auto_map(hub: LocalHub, pushed: dict) -> None:
    api = HfApi()
    for name in VARIANTS:
        files = set(api.list_repo_files(f"user/{name}"))
        assert {"config.json", "model.safetensors", "README.md", "configuration_linmem.py",
                "modeling_linmem.py"} <= files
        assert set(remote_code_files()) <= files
        config = AutoConfig.from_pretrained(f"user/{name}")
        names = {c.model_type: (c.__name__, m.__name__, lm.__name__) for c, (m, lm) in linmem.ARCHITECTURES.items()}
        config_name, model_name, lm_name = names[config.model_type]
        assert config.auto_map == {"AutoConfig": f"configuration_linmem.{config_name}",
                                   "AutoModel": f"modeling_linmem.{model_name}",
                                   "AutoModelForCausalLM": f"modeling_linmem.{lm_name}"}


def test_exported_files_pass_transformers_checks() -> None:
    files = remote_code_files()
    check_remote_files(files)  # sibling imports exist; only stdlib/torch/transformers imports unguarded
    for name, source in files.items():
        for node in ast.walk(ast.parse(source, name)):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1 and not (node.level == 0 and (node.module or "").startswith("linmem")), name
                assert node.level == 0 or f"{node.module}.py" in files, (name, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "linmem" for a in node.names), name


@pytest.mark.parametrize("name", list(VARIANTS))
def test_native_load_through_hub(hub: LocalHub, pushed: dict, name: str) -> None:
    ids, mask = _inputs()
    model = AutoModelForCausalLM.from_pretrained(f"user/{name}").eval()
    assert type(model) is pushed[name]["class"] and type(model).__module__.startswith("linmem.")
    got, ref = _run(model, ids, mask), pushed[name]["ref"]
    torch.testing.assert_close(got["logits"], ref["logits"], rtol=0, atol=0)
    assert torch.equal(got["generated"], ref["generated"])


def test_revision_pinning_native(hub: LocalHub, pushed: dict) -> None:
    ids, mask = _inputs()
    name = "qdelta"
    changed = make_model(name, dtype=torch.float32, seed=4)
    second = changed.push_to_hub(f"user/{name}-pinned")
    first_model = make_model(name, dtype=torch.float32, seed=3)
    first = first_model.push_to_hub(f"user/{name}-pinned")  # latest = seed 3, first commit = seed 4
    assert first.oid != second.oid
    old = AutoModelForCausalLM.from_pretrained(f"user/{name}-pinned", revision=second.oid).eval()
    new = AutoModelForCausalLM.from_pretrained(f"user/{name}-pinned").eval()
    torch.testing.assert_close(_run(old, ids, mask)["logits"], _run(changed, ids, mask)["logits"], rtol=0, atol=0)
    torch.testing.assert_close(_run(new, ids, mask)["logits"], pushed[name]["ref"]["logits"], rtol=0, atol=0)


CHILD = '''
import json, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM

args = json.loads(open({args_path!r}).read())
ids, mask = torch.tensor(args["ids"]), torch.tensor(args["mask"])

def run(model):
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        generated = model.generate(ids, attention_mask=mask, max_new_tokens=args["new_tokens"], do_sample=False,
                                   pad_token_id=0)
    return {{"logits": logits, "generated": generated, "module": type(model).__module__,
             "class": type(model).__name__}}

results = {{}}
for name in args["names"]:
    results[name] = run(AutoModelForCausalLM.from_pretrained("user/" + name, trust_remote_code=True).eval())

# Revision pinning with remote code: the first commit's weights (and code) are loaded.
pinned = AutoModelForCausalLM.from_pretrained(args["pinned_repo"], revision=args["pinned_sha"],
                                              trust_remote_code=True).eval()
results["pinned"] = run(pinned)

# Without trust_remote_code: a clear error, not a silent fallback.
try:
    AutoModelForCausalLM.from_pretrained("user/" + args["names"][0])
except ValueError as error:
    results["error"] = str(error)
else:
    raise SystemExit("loading remote code without trust_remote_code=True did not fail")

# A model loaded as remote code saves and pushes like the package's: its own files are re-exported.
again = AutoModelForCausalLM.from_pretrained("user/" + args["repush"], trust_remote_code=True).eval()
again.push_to_hub("user/" + args["repush"] + "-again")
reloaded = AutoModelForCausalLM.from_pretrained("user/" + args["repush"] + "-again", trust_remote_code=True).eval()
results["repushed"] = run(reloaded)
config = AutoConfig.from_pretrained("user/" + args["repush"] + "-again", trust_remote_code=True)
results["repushed_auto_map"] = config.auto_map

# A config saved on its own carries the configuration code.
config_only = AutoConfig.from_pretrained(args["config_dir"], trust_remote_code=True)
results["config_only"] = (type(config_only).__module__, type(config_only).__name__, config_only.to_dict())

# The Triton kernels through the remote code's own dispatch (CPU: TRITON_INTERPRET=1; the GPU test does CUDA).
import importlib
for name in args["triton_names"]:
    model = AutoModelForCausalLM.from_pretrained("user/" + name, trust_remote_code=True).eval()
    backend = importlib.import_module(type(model).__module__.rpartition(".")[0] + ".linmem_kernels_backend")
    with backend.use_backend("triton"), torch.no_grad():
        results["triton_" + name] = model(ids, attention_mask=mask).logits
results["triton_modules"] = sorted(m.rsplit(".", 1)[-1] for m in sys.modules
                                   if m.startswith("transformers_modules") and "_triton_" in m)
torch.save(results, args["out"])
'''


def test_remote_code_without_linmem(hub: LocalHub, pushed: dict, tmp_path: Path) -> None:
    ids, mask = _inputs()
    names = list(VARIANTS)
    pinned_model = make_model("ccq-gdn", dtype=torch.float32, seed=7)
    pinned_sha = pinned_model.push_to_hub("user/ccq-gdn-remote-pinned").oid
    make_model("ccq-gdn", dtype=torch.float32, seed=8).push_to_hub("user/ccq-gdn-remote-pinned")
    args = {"ids": ids.tolist(), "mask": mask.tolist(), "new_tokens": NEW_TOKENS, "names": names,
            "pinned_repo": "user/ccq-gdn-remote-pinned", "pinned_sha": pinned_sha, "repush": "ccq-gla-hybrid-window",
            "triton_names": TRITON_NAMES, "config_dir": str(tmp_path / "config_only"), "out": str(tmp_path / "results.pt")}
    config = VARIANTS["qdelta"](lamb_bias=0.5)
    config.save_pretrained(tmp_path / "config_only")
    args_path = tmp_path / "args.json"
    args_path.write_text(json.dumps(args))
    run_without_linmem(CHILD.format(args_path=str(args_path)), hub, TRITON_INTERPRET="1")
    results = torch.load(tmp_path / "results.pt")

    for name in names:
        got, ref = results[name], pushed[name]["ref"]
        assert got["module"].startswith("transformers_modules.") and got["class"] == pushed[name]["class"].__name__
        torch.testing.assert_close(got["logits"], ref["logits"], rtol=0, atol=0, msg=name)
        assert torch.equal(got["generated"], ref["generated"]), name
    torch.testing.assert_close(results["pinned"]["logits"], _run(pinned_model, ids, mask)["logits"], rtol=0, atol=0)
    assert "trust_remote_code=True" in results["error"] and "custom code" in results["error"]
    repushed_ref = pushed[args["repush"]]["ref"]
    torch.testing.assert_close(results["repushed"]["logits"], repushed_ref["logits"], rtol=0, atol=0)
    assert torch.equal(results["repushed"]["generated"], repushed_ref["generated"])
    assert results["repushed_auto_map"]["AutoModelForCausalLM"] == "modeling_linmem.CCQForCausalLM"
    assert set(remote_code_files()) <= set(HfApi().list_repo_files("user/ccq-gla-hybrid-window-again"))
    for name in TRITON_NAMES:  # flattened Triton modules were found by name and ran
        assert relative_rms(results["triton_" + name], pushed[name]["ref"]["logits"]) <= 1e-5, name
    assert {"linmem_kernels_gla_triton_chunk", "linmem_kernels_qdelta_triton_chunk"} <= set(results["triton_modules"])
    module, class_name, fields = results["config_only"]
    assert module.startswith("transformers_modules.") and class_name == "QDeltaConfig"
    assert fields["lamb_bias"] == 0.5 and fields["model_type"] == "linmem_qdelta"


def test_config_alone_exports_configuration_code(tmp_path: Path) -> None:
    config = VARIANTS["qdelta"]()
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == {"AutoConfig": "configuration_linmem.QDeltaConfig"}
    assert (tmp_path / "configuration_linmem.py").is_file() and not (tmp_path / "modeling_linmem.py").exists()
    assert not any(p.name.startswith("linmem_modeling") for p in tmp_path.iterdir())
