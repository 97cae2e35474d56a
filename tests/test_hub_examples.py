"""The examples run as written against the local Hub (tiny sizes via their CLI flags)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from huggingface_hub import HfApi

from linmem.export.remote_code import remote_code_files
from tests.conftest_hub import LocalHub, local_hub  # noqa: F401  (fixture)
from tests.hub_subprocess import run_without_linmem

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def _run(hub: LocalHub, script: str, *args: str, cwd: Path) -> str:
    # linmem importable as installed (also when the test runs from a checkout that is not pip-installed).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=hub.env(PYTHONPATH=path), cwd=cwd,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result.stdout


def test_push_finetune_generate(local_hub: LocalHub, tmp_path: Path) -> None:
    out = _run(local_hub, "push_to_hub.py", "--repo-id", "user/example", "--arch", "ccq-gdn", "--hidden-size", "32",
               "--layers", "2", "--vocab-size", "300", cwd=tmp_path)
    assert "pushed CCQForCausalLM" in out
    files = set(HfApi().list_repo_files("user/example"))
    assert {"tokenizer.json", "README.md", "model.safetensors"} | set(remote_code_files()) <= files

    out = _run(local_hub, "finetune_lora.py", "--model", "user/example", "--steps", "6", "--batch-size", "2",
               "--seq-len", "32", "--eval-batches", "1", "--output-dir", str(tmp_path / "lora"),
               "--push-to", "user/example-lora", "--merge-and-push", "user/example-merged", cwd=tmp_path)
    assert "held-out loss after 6 steps" in out
    plot = tmp_path / "lora" / "loss.png"
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "adapter_config.json" in HfApi().list_repo_files("user/example-lora")
    assert set(remote_code_files()) <= set(HfApi().list_repo_files("user/example-merged"))

    native = _run(local_hub, "generate.py", "user/example", "--adapter", "user/example-lora", "--prompt", "The",
                  "--max-new-tokens", "5", cwd=tmp_path)
    assert "5 tokens" in native
    # Without linmem the script falls back to the checkpoint's code; the merged model continues the same way
    # as base + adapter.
    code = f'''
import runpy
sys.argv = ["generate.py", "user/example-merged", "--prompt", "The", "--max-new-tokens", "5"]
runpy.run_path({str(EXAMPLES / "generate.py")!r}, run_name="__main__")
'''
    remote = run_without_linmem(code, local_hub).stdout
    assert "using the checkpoint's remote code" in remote and "from transformers_modules" in remote
    assert remote.splitlines()[-1] == native.splitlines()[-1]
