"""The local Hub test server, exercised by the real huggingface_hub / transformers / peft clients over HTTP."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.conftest_hub import LocalHub, local_hub, local_hub_environment  # noqa: F401  (fixture)
from tests.hub_server import git_blob_sha1


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_fixture_points_clients_at_local_hub_and_restores(tmp_path: Path) -> None:
    before_endpoint = huggingface_hub.constants.ENDPOINT
    before_cache = huggingface_hub.constants.HF_HUB_CACHE
    with local_hub_environment(tmp_path / "home") as hub:
        assert hub.endpoint.startswith("http://127.0.0.1:")
        assert huggingface_hub.constants.ENDPOINT == hub.endpoint
        assert huggingface_hub.constants.HF_HUB_CACHE == str(hub.cache_dir)
        assert HfApi().endpoint == hub.endpoint
        assert hub.env()["HF_ENDPOINT"] == hub.endpoint and hub.env()["HF_TOKEN"] == hub.token
        assert HfApi().whoami()["name"] == "user"
    assert huggingface_hub.constants.ENDPOINT == before_endpoint
    assert huggingface_hub.constants.HF_HUB_CACHE == before_cache


def test_create_repo_private_and_exist_ok(local_hub: LocalHub) -> None:
    api = HfApi()
    url = api.create_repo("user/secret", private=True)
    assert url.repo_id == "user/secret" and url.startswith(local_hub.endpoint)
    assert api.create_repo("user/secret", exist_ok=True).repo_id == "user/secret"
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo("user/secret")
    assert info.value.response.status_code == 409
    assert api.model_info("user/secret").private is True
    # Without a token a private repo does not exist; with a wrong token the request is refused.
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("user/secret", token=False)
    with pytest.raises(HfHubHTTPError) as info:
        api.model_info("user/secret", token="hf_wrong")
    assert info.value.response.status_code == 401
    # A repo name without namespace lands in the user's namespace, like on the Hub.
    assert api.create_repo("bare").repo_id == "user/bare"
    assert api.repo_exists("user/bare")
    api.delete_repo("user/bare")
    assert not api.repo_exists("user/bare")


def test_upload_download_and_listing(local_hub: LocalHub, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo("user/files")
    files = {"config.json": '{"a": 1}', "sub/deep/w.txt": "weights", "sub/notes.md": "notes"}
    _write(tmp_path / "src", files)
    commit = api.upload_folder(folder_path=tmp_path / "src", repo_id="user/files", commit_message="add files")
    assert len(commit.oid) == 40 and all(c in "0123456789abcdef" for c in commit.oid)
    upload = api.upload_file(path_or_fileobj=b"\x00\x01binary", path_in_repo="blob.bin", repo_id="user/files")
    assert upload.oid != commit.oid

    expected = sorted([".gitattributes", "blob.bin", *files])
    assert sorted(api.list_repo_files("user/files")) == expected
    top_level = {(e.path, type(e).__name__) for e in api.list_repo_tree("user/files")}
    assert top_level == {(".gitattributes", "RepoFile"), ("blob.bin", "RepoFile"), ("config.json", "RepoFile"),
                         ("sub", "RepoFolder")}
    sub_tree = sorted(e.path for e in api.list_repo_tree("user/files", path_in_repo="sub", recursive=True))
    assert sub_tree == ["sub/deep", "sub/deep/w.txt", "sub/notes.md"]
    info = api.model_info("user/files", files_metadata=True)
    assert info.sha == upload.oid
    assert sorted(s.rfilename for s in info.siblings) == expected
    assert {s.rfilename: s.size for s in info.siblings}["sub/deep/w.txt"] == len("weights")

    meta = get_hf_file_metadata(hf_hub_url("user/files", "sub/deep/w.txt"))
    assert meta.commit_hash == upload.oid
    assert meta.etag == git_blob_sha1(b"weights") and meta.size == len("weights")

    # An LFS-type file: redirect to the CDN host, sha256 ETag, then downloaded from there.
    lfs_meta = get_hf_file_metadata(hf_hub_url("user/files", "blob.bin"))
    assert lfs_meta.etag == hashlib.sha256(b"\x00\x01binary").hexdigest() and lfs_meta.size == 8
    assert lfs_meta.location.startswith(local_hub.server._httpd.cdn_endpoint + "/_cdn/")
    assert {e.path: e for e in api.list_repo_tree("user/files")}["blob.bin"].lfs.sha256 == lfs_meta.etag
    path = hf_hub_download("user/files", "blob.bin")
    assert Path(path).read_bytes() == b"\x00\x01binary"
    assert Path(path).is_relative_to(local_hub.cache_dir)
    snapshot = Path(snapshot_download("user/files"))
    assert snapshot.name == upload.oid
    for name, text in files.items():
        assert (snapshot / name).read_text() == text
    # Unchanged files are not committed again (preupload returns the remote blob id).
    again = api.upload_folder(folder_path=tmp_path / "src", repo_id="user/files")
    assert again.oid == upload.oid


def test_revision_pinning_tags_and_deletes(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("user/pin")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id="user/pin").oid
    api.upload_file(path_or_fileobj=b"old", path_in_repo="gone.txt", repo_id="user/pin")
    second = api.upload_file(path_or_fileobj=b"v2", path_in_repo="f.txt", repo_id="user/pin").oid
    api.delete_file("gone.txt", repo_id="user/pin")

    assert Path(hf_hub_download("user/pin", "f.txt")).read_text() == "v2"
    assert Path(hf_hub_download("user/pin", "f.txt", revision=first)).read_text() == "v1"
    assert Path(hf_hub_download("user/pin", "f.txt", revision=second[:10])).read_text() == "v2"
    assert api.model_info("user/pin", revision=first).sha == first
    assert "gone.txt" in api.list_repo_files("user/pin", revision=second)
    assert "gone.txt" not in api.list_repo_files("user/pin")

    api.create_tag("user/pin", tag="v1.0", revision=first)
    assert Path(hf_hub_download("user/pin", "f.txt", revision="v1.0")).read_text() == "v1"
    assert [t.target_commit for t in api.list_repo_refs("user/pin").tags] == [first]
    history = [c.commit_id for c in api.list_repo_commits("user/pin")]
    assert len(history) == 5 and history[-2] == first and history[-4] == second


def test_branches(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("user/branchy")
    base = api.upload_file(path_or_fileobj=b"main", path_in_repo="f.txt", repo_id="user/branchy").oid
    api.create_branch("user/branchy", branch="dev")
    api.create_branch("user/branchy", branch="dev", exist_ok=True)
    dev = api.upload_file(path_or_fileobj=b"dev", path_in_repo="f.txt", repo_id="user/branchy", revision="dev").oid

    assert Path(hf_hub_download("user/branchy", "f.txt", revision="dev")).read_text() == "dev"
    assert Path(hf_hub_download("user/branchy", "f.txt")).read_text() == "main"
    branches = {b.name: b.target_commit for b in api.list_repo_refs("user/branchy").branches}
    assert branches == {"main": base, "dev": dev}
    api.delete_branch("user/branchy", branch="dev")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("user/branchy", revision="dev")


def test_missing_repo_file_and_revision_raise_typed_errors(local_hub: LocalHub) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("user/nope", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("user/nope")
    api.create_repo("user/exists")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("user/exists", "missing.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("user/exists", ".gitattributes", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="user/exists", revision="no-such-branch")


def test_range_request(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("user/r")
    api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits", repo_id="user/r")
    session = huggingface_hub.get_session()
    response = session.get(hf_hub_url("user/r", "digits"), headers={"Range": "bytes=3-5"})
    assert response.status_code == 206 and response.content == b"345"
    assert response.headers["Content-Range"] == "bytes 3-5/10"


def test_subprocess_uses_env(local_hub: LocalHub) -> None:
    api = HfApi()
    api.create_repo("user/sub")
    api.upload_file(path_or_fileobj=b"from parent", path_in_repo="msg.txt", repo_id="user/sub")
    code = "from huggingface_hub import hf_hub_download; print(hf_hub_download('user/sub', 'msg.txt'))"
    result = subprocess.run([sys.executable, "-c", code], env=local_hub.env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.read_text() == "from parent" and path.is_relative_to(local_hub.cache_dir)


def _tiny_gpt2(seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=64, n_layer=1, n_embd=16, n_head=2, n_positions=32)
    return GPT2LMHeadModel(config).eval()


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name


def test_transformers_push_and_from_pretrained_with_revision(local_hub: LocalHub) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, GPT2LMHeadModel

    model_v1 = _tiny_gpt2(seed=0)
    first = model_v1.push_to_hub("user/tiny")
    model_v2 = _tiny_gpt2(seed=1)
    model_v2.push_to_hub("user/tiny")

    config = AutoConfig.from_pretrained("user/tiny")
    assert (config.model_type, config.vocab_size, config.n_embd) == ("gpt2", 64, 16)
    loaded = GPT2LMHeadModel.from_pretrained("user/tiny").eval()
    _assert_same_weights(model_v2, loaded)
    pinned = AutoModelForCausalLM.from_pretrained("user/tiny", revision=first.oid).eval()
    _assert_same_weights(model_v1, pinned)
    ids = torch.arange(10).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(pinned(ids).logits, model_v1(ids).logits)
    with pytest.raises(OSError):
        AutoConfig.from_pretrained("user/does-not-exist")


def test_peft_adapter_push_and_load(local_hub: LocalHub) -> None:
    from peft import AutoPeftModelForCausalLM, LoraConfig, PeftModel, get_peft_model
    from transformers import GPT2LMHeadModel

    _tiny_gpt2(seed=0).push_to_hub("user/tiny-base")
    base = GPT2LMHeadModel.from_pretrained("user/tiny-base")
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_()  # lora_B starts at zero: make the adapter change the output
    lora.eval().push_to_hub("user/tiny-lora")
    files = HfApi().list_repo_files("user/tiny-lora")
    assert "adapter_config.json" in files and "adapter_model.safetensors" in files

    ids = torch.arange(12).unsqueeze(0)
    with torch.no_grad():
        expected = lora(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained("user/tiny-base"), "user/tiny-lora")
        assert torch.equal(reloaded.eval()(input_ids=ids).logits, expected)
        auto = AutoPeftModelForCausalLM.from_pretrained("user/tiny-lora").eval()
        assert torch.equal(auto(input_ids=ids).logits, expected)


def test_remote_code_config_loads_in_subprocess(local_hub: LocalHub, tmp_path: Path) -> None:
    config_code = (
        "from transformers import PretrainedConfig\n\n"
        "class EchoConfig(PretrainedConfig):\n"
        "    model_type = 'echo_hub_test'\n\n"
        "    def __init__(self, width=3, **kwargs):\n"
        "        self.width = width\n"
        "        super().__init__(**kwargs)\n"
    )
    config_json = json.dumps(
        {"model_type": "echo_hub_test", "width": 7, "auto_map": {"AutoConfig": "configuration_echo.EchoConfig"}}
    )
    _write(tmp_path / "repo", {"configuration_echo.py": config_code, "config.json": config_json})
    api = HfApi()
    api.create_repo("user/echo")
    sha = api.upload_folder(folder_path=tmp_path / "repo", repo_id="user/echo").oid
    code = (
        "from transformers import AutoConfig\n"
        "config = AutoConfig.from_pretrained('user/echo', trust_remote_code=True)\n"
        "print(type(config).__module__, config.width)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=local_hub.env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    module_name, width = result.stdout.split()
    assert width == "7" and module_name.endswith(f"{sha}.configuration_echo")
    assert (local_hub.home / "modules" / "transformers_modules" / "user" / "echo").is_dir()
