"""Run Python code in a child process where `import linmem` fails, against the local Hub (tests only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest_hub import LocalHub

#: Prepended to the child's code: every `linmem` / `linmem.*` import raises ModuleNotFoundError, as on a
#: machine where the package is not installed (the editable install and the repo checkout stay invisible).
BLOCK_LINMEM = textwrap.dedent('''
    import importlib.abc, sys

    class _NoLinmem(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "linmem" or name.startswith("linmem."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoLinmem())
    try:
        import linmem  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("linmem is still importable in the child")
''')

CHECK_NO_LINMEM_LOADED = textwrap.dedent('''
    _loaded = sorted(m for m in sys.modules if m == "linmem" or m.startswith("linmem."))
    assert not _loaded, f"linmem modules were imported: {_loaded}"
''')


def run_without_linmem(code: str, hub: LocalHub, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run BLOCK_LINMEM + code + CHECK_NO_LINMEM_LOADED with the local Hub's environment; assert it succeeded."""
    script = BLOCK_LINMEM + textwrap.dedent(code) + CHECK_NO_LINMEM_LOADED
    result = subprocess.run([sys.executable, "-c", script], env=hub.env(**env), capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=timeout, cwd="/")
    assert result.returncode == 0, f"child failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
    return result
