"""Each benchmarks/ script run as `python benchmarks/x.py` imports benchmarks/_script.py before anything that can
import transformers: otherwise benchmarks/kernels.py, first on sys.path, shadows Hugging Face's `kernels` package
and `import transformers` fails wherever that package is installed (train_throughput.py did, until this test)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if "import _script" in p.read_text())


def _imported_modules_in_order(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return sorted(found)


def test_scripts_are_found():
    assert "train_throughput.py" in {p.name for p in SCRIPTS} and len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_path_is_fixed_before_third_party_imports(script: Path):
    modules = _imported_modules_in_order(ast.parse(script.read_text()))
    script_line = min(line for line, name in modules if name == "_script")
    early = [name for line, name in modules
             if line < script_line and name.split(".")[0] in {"transformers", "linmem", "benchmarks", "peft"}]
    assert not early, f"{script.name} imports {early} before _script"
