"""Pytest plugin: the `local_hub` fixture, a local Hugging Face Hub for push/pull tests.

Use from tests/conftest.py with `pytest_plugins = ["tests.conftest_hub"]` (or `from tests.conftest_hub import *`).

    def test_push(local_hub):
        model.push_to_hub("user/tiny")              # goes to http://127.0.0.1:<port>
        AutoModel.from_pretrained("user/tiny")       # downloads into a temporary HF_HOME
        subprocess.run([...], env=local_hub.env())   # a child process sees the same Hub

In process, `huggingface_hub` and `transformers` read HF_ENDPOINT / HF_HOME / HF_HUB_CACHE at import time, so
setting environment variables is not enough: `local_hub_environment` also rewrites those module constants (and the
shared HfApi clients built from them) for the duration, then restores everything.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.hub_server import LocalHubServer

__all__ = ["LocalHub", "local_hub", "local_hub_environment"]

# Libraries whose modules may hold a copy of a huggingface_hub constant (via `from ... import NAME`).
_PATCHED_MODULE_PREFIXES = ("huggingface_hub", "transformers", "peft", "accelerate")


@dataclass
class LocalHub:
    """What the `local_hub` fixture yields.

    endpoint: base URL of the server (also in HF_ENDPOINT); token: a valid token for the user `user` (also HF_TOKEN);
    home: the temporary HF_HOME; cache_dir: HF_HUB_CACHE inside it; server: the LocalHubServer (its `.store` holds
    the repos, for white-box assertions).
    """

    endpoint: str
    token: str
    user: str
    home: Path
    cache_dir: Path
    server: LocalHubServer
    env_vars: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """A full environment for a subprocess: the current one plus the Hub variables (plus `extra`)."""
        return {**os.environ, **self.env_vars, **extra}


def _hub_env_vars(endpoint: str, token: str, home: Path) -> dict[str, str]:
    return {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_MODULES_CACHE": str(home / "modules"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


class _AttributePatcher:
    """setattr with undo, in reverse order."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def set(self, target: Any, name: str, value: Any) -> None:
        self._undo.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    def set_everywhere(self, name: str, old: Any, new: Any) -> None:
        """Replace `name` in every loaded hub-related module where it still holds the import-time value `old`."""
        for module_name, module in list(sys.modules.items()):
            if module is None or not module_name.startswith(_PATCHED_MODULE_PREFIXES):
                continue
            # Read __dict__, not getattr: transformers' lazy modules import submodules on attribute access.
            current = vars(module).get(name, _MISSING)
            if current is not _MISSING and current is not new and current == old:
                self.set(module, name, new)

    def undo(self) -> None:
        while self._undo:
            target, name, value = self._undo.pop()
            setattr(target, name, value)


_MISSING = object()


def _patch_hub_libraries(patcher: _AttributePatcher, env: dict[str, str]) -> None:
    """Point the already-imported huggingface_hub / transformers at the local Hub and the temporary HF_HOME."""
    from huggingface_hub import constants, hf_api

    # Import now (with the real values) the modules that copy constants at import time, so that the copies are
    # patched and later restored, instead of being imported during the test and keeping temporary paths forever.
    for module_name in ("huggingface_hub.utils._cache_manager", "transformers.utils.hub",
                        "transformers.dynamic_module_utils"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module_name)

    endpoint = env["HF_ENDPOINT"]
    new_values: dict[str, Any] = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": env["HF_HOME"],
        "HF_HUB_CACHE": env["HF_HUB_CACHE"],
        "HUGGINGFACE_HUB_CACHE": env["HF_HUB_CACHE"],
        "HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HUGGINGFACE_ASSETS_CACHE": env["HF_ASSETS_CACHE"],
        "HF_XET_CACHE": env["HF_XET_CACHE"],
        "HF_TOKEN_PATH": env["HF_TOKEN_PATH"],
        "HF_STORED_TOKENS_PATH": str(Path(env["HF_TOKEN_PATH"]).parent / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "CHECK_FOR_UPDATE_DONE_PATH": os.path.join(env["HF_HOME"], ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": os.path.join(env["HF_HOME"], ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": os.path.join(env["HF_HOME"], ".agent_harnesses.json"),
    }
    if hasattr(constants, "HF_URL_HOSTS"):
        # What the import would have computed from HF_ENDPOINT. Not "localhost": the server's fake CDN host.
        new_values["HF_URL_HOSTS"] = frozenset(constants.HF_URL_HOSTS | {"127.0.0.1"})
    for name, new in new_values.items():
        if hasattr(constants, name):
            patcher.set_everywhere(name, getattr(constants, name), new)

    # The module-level HfApi behind `huggingface_hub.create_repo`, `hf_hub_download`'s helpers, etc.
    patcher.set(hf_api.api, "endpoint", endpoint)

    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None:
        # transformers caches one HfApi (built with the import-time endpoint) and its remote-code cache folder.
        if hasattr(transformers_hub, "_hf_api"):
            patcher.set(transformers_hub, "_hf_api", None)
        patcher.set_everywhere("HF_MODULES_CACHE", transformers_hub.HF_MODULES_CACHE, env["HF_MODULES_CACHE"])


@contextlib.contextmanager
def local_hub_environment(home: str | os.PathLike) -> Iterator[LocalHub]:
    """Start a local Hub, point env vars and the imported Hub libraries at it (HF_HOME = `home`), undo on exit.

    Not thread-safe with respect to other code reading os.environ; meant for a test (or a test module) at a time.
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    server = LocalHubServer().start()
    env_vars = _hub_env_vars(server.endpoint, server.token, home)
    saved_env = {name: os.environ.get(name) for name in env_vars}
    patcher = _AttributePatcher()
    try:
        os.environ.update(env_vars)
        _patch_hub_libraries(patcher, env_vars)
        yield LocalHub(
            endpoint=server.endpoint,
            token=server.token,
            user=server.user,
            home=home,
            cache_dir=Path(env_vars["HF_HUB_CACHE"]),
            server=server,
            env_vars=env_vars,
        )
    finally:
        patcher.undo()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


@pytest.fixture
def local_hub(tmp_path: Path) -> Iterator[LocalHub]:
    """A fresh, empty local Hub for one test; HF_HOME is `tmp_path / "hf_home"`."""
    with local_hub_environment(tmp_path / "hf_home") as hub:
        yield hub
