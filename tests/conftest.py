"""Shared pytest set-up: GPU tests run only with `-m gpu` on a CUDA machine.

Without CUDA, the Triton kernels run under the interpreter. `triton.jit` decides between compiled and
interpreted functions when a kernel module is imported, so TRITON_INTERPRET must be set here, before any
test module (or a library such as fla) imports triton; setting it later leaves a mix of the two kinds of
function and every launch fails with "Cannot call @triton.jit'd outside of the scope of a kernel".
"""

import os

import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402


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
