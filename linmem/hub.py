"""The Hugging Face Hub workflow of linmem models: save and push with remote code and a model card.

`LinmemPreTrainedModel.save_pretrained` / `.push_to_hub` and `LinmemConfig.save_pretrained` call into
this module, so every checkpoint linmem writes carries, beside the weights:
  * remote code (`configuration_linmem.py`, `modeling_linmem.py`, flattened `linmem_*.py`) and `auto_map`
    in config.json: without linmem, `AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True)`
    runs the same code (linmem.export.remote_code);
  * README.md, a model card (linmem.export.model_card); a README you wrote yourself (without the
    marker line) is never overwritten.
Training metadata for the card: pass `training_metadata={...}` to save_pretrained / push_to_hub, or set
`model.training_metadata = {...}`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .export.model_card import CARD_MARKER, build_model_card
from .export.remote_code import package_facts, write_remote_code

# save_pretrained(push_to_hub=True, ...) arguments that belong to the upload, not to the save.
_PUSH_ARGUMENTS = ("repo_id", "commit_message", "commit_description", "create_pr", "private", "revision")


def _card_is_ours(readme: Path) -> bool:
    return not readme.is_file() or CARD_MARKER in readme.read_text(encoding="utf-8")


def write_model_card(model: Any, save_directory: str | os.PathLike, *, repo_id: str | None = None,
                     training_metadata: dict | None = None, tags: list[str] | None = None) -> bool:
    """Write README.md for `model` into `save_directory`; False (nothing written) if a foreign README is there."""
    readme = Path(save_directory) / "README.md"
    if not _card_is_ours(readme):
        return False
    facts = package_facts()
    metadata = training_metadata if training_metadata is not None else getattr(model, "training_metadata", None)
    card = build_model_card(
        model.config, repo_id=repo_id, num_parameters=model.num_parameters(),
        activation_bytes=torch.empty((), dtype=model.dtype).element_size(),
        lora_target_modules=facts["lora_target_modules"], training_metadata=metadata, version=facts["version"],
        tags=tags,
    )
    readme.write_text(card, encoding="utf-8")
    return True


def _upload(folder: str | os.PathLike, repo_id: str, *, token: bool | str | None = None,
            commit_message: str | None = None, commit_description: str | None = None, private: bool | None = None,
            revision: str | None = None, create_pr: bool = False, default_message: str = "Upload model") -> Any:
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = api.create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    if revision is not None and not revision.startswith("refs/pr"):
        api.create_branch(repo_id, branch=revision, token=token, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message or default_message,
                             commit_description=commit_description, token=token, revision=revision,
                             create_pr=create_pr)


def _remote_readme_is_foreign(repo_id: str, token: bool | str | None, revision: str | None) -> bool:
    """True when the Hub repo already has a README.md that linmem did not write (keep it)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        path = hf_hub_download(repo_id, "README.md", revision=revision, token=token)
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        return False
    return not _card_is_ours(Path(path))


def save_model(model: Any, parent_save: Callable[..., Any], save_directory: str | os.PathLike, *args: Any,
               training_metadata: dict | None = None, push_to_hub: bool = False, **kwargs: Any) -> None:
    """`model.save_pretrained`: transformers' save (`parent_save`), then remote code, auto_map and the card.

    With push_to_hub=True the upload happens after these files are written (transformers' own push
    inside parent_save would upload before them).
    """
    push = {name: kwargs.pop(name) for name in _PUSH_ARGUMENTS if name in kwargs}
    parent_save(save_directory, *args, **kwargs)
    if not kwargs.get("is_main_process", True):
        return
    write_remote_code(save_directory, type(model.config).__name__)
    write_model_card(model, save_directory, repo_id=push.get("repo_id"), training_metadata=training_metadata)
    if push_to_hub:
        repo_id = push.pop("repo_id", Path(save_directory).name)
        _upload(save_directory, repo_id, token=kwargs.get("token"), **push)


def save_config(config: Any, parent_save: Callable[..., Any], save_directory: str | os.PathLike,
                push_to_hub: bool = False, **kwargs: Any) -> None:
    """`config.save_pretrained`: transformers' save, then the configuration remote code and `auto_map`."""
    push = {name: kwargs.pop(name) for name in _PUSH_ARGUMENTS if name in kwargs}
    token = kwargs.get("token")
    parent_save(save_directory, **kwargs)
    write_remote_code(save_directory, type(config).__name__, with_modeling=False)
    if push_to_hub:
        repo_id = push.pop("repo_id", Path(save_directory).name)
        _upload(save_directory, repo_id, token=token, default_message="Upload config", **push)


def push_model(model: Any, repo_id: str, *, commit_message: str | None = None, commit_description: str | None = None,
               private: bool | None = None, token: bool | str | None = None, revision: str | None = None,
               create_pr: bool = False, max_shard_size: int | str | None = "50GB", tags: list[str] | None = None,
               training_metadata: dict | None = None) -> Any:
    """`model.push_to_hub`: same arguments as transformers' (plus training_metadata); returns the CommitInfo.

    Uploads weights, config (with auto_map), generation config, remote code and the model card.
    """
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"`repo_id` must be a non-empty string like 'user/name', got {repo_id!r}")
    from huggingface_hub import HfApi

    repo_id = HfApi().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
    keep_remote_readme = _remote_readme_is_foreign(repo_id, token, revision)
    with tempfile.TemporaryDirectory() as work_dir:
        model.save_pretrained(work_dir, max_shard_size=max_shard_size, training_metadata=training_metadata)
        readme = Path(work_dir) / "README.md"
        if keep_remote_readme:
            readme.unlink(missing_ok=True)
        else:
            readme.unlink(missing_ok=True)
            write_model_card(model, work_dir, repo_id=repo_id, training_metadata=training_metadata,
                             tags=list(tags or []) + list(model.model_tags or []))
        return _upload(work_dir, repo_id, token=token, commit_message=commit_message,
                       commit_description=commit_description, revision=revision, create_pr=create_pr)
