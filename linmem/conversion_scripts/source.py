"""Reading a source checkpoint: a local directory or a Hub id, its config, tensor names/shapes and hashes.

Tensors are read lazily (safetensors `safe_open`, or a memory-mapped `torch.load` for `.bin` files), so a
dry run touches only the headers and a conversion holds one copy of the weights at most.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

WEIGHT_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json",
    "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
)


class ConversionError(ValueError):
    """A conversion cannot proceed; the message names the key, field or file at fault."""


@dataclass
class SourceCheckpoint:
    """A source checkpoint on disk.

    Attributes:
        path: the local directory.
        source_id: what the user passed (directory or Hub id).
        revision: the Hub commit hash, or None for a local directory.
        config: the parsed config.json.
        key_files: tensor name -> the weight file holding it.
    """

    path: Path
    source_id: str
    revision: str | None
    config: dict[str, Any]
    key_files: dict[str, Path] = field(default_factory=dict)
    _shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _dtypes: dict[str, torch.dtype] = field(default_factory=dict, repr=False)
    _bin_cache: dict[Path, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    def keys(self) -> list[str]:
        return list(self.key_files)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._shapes[key]

    def dtype(self, key: str) -> torch.dtype:
        return self._dtypes[key]

    def meta(self, key: str) -> torch.Tensor:
        """A meta tensor with the key's shape and dtype (for dry runs and shape checks)."""
        return torch.empty(self.shape(key), dtype=self.dtype(key), device="meta")

    def tensor(self, key: str) -> torch.Tensor:
        """Load one tensor (CPU, its stored dtype)."""
        if key not in self.key_files:
            raise ConversionError(f"source tensor `{key}` does not exist in {self.path}")
        file = self.key_files[key]
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as handle:
                return handle.get_tensor(key)
        return self._load_bin(file)[key]

    def weight_files(self) -> list[Path]:
        return sorted(set(self.key_files.values()))

    def weight_hashes(self) -> dict[str, str]:
        """file name -> sha256 of its bytes."""
        return {file.name: sha256_file(file) for file in self.weight_files()}

    def tokenizer_files(self) -> list[Path]:
        return [self.path / name for name in TOKENIZER_FILES if (self.path / name).is_file()]

    def _load_bin(self, file: Path) -> dict[str, torch.Tensor]:
        if file not in self._bin_cache:
            self._bin_cache[file] = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
        return self._bin_cache[file]


def sha256_file(path: Path, chunk_bytes: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve_directory(source: str, revision: str | None) -> tuple[Path, str | None]:
    """A local directory as is; anything else is downloaded from the Hub (weights, config, tokenizer)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path, revision
    if path.exists():
        raise ConversionError(f"`--source` must be a checkpoint directory or a Hub id, got the file {source!r}")
    if not re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", source):
        raise ConversionError(f"`--source` {source!r} is neither an existing directory nor a valid Hub id")
    from huggingface_hub import snapshot_download

    local = Path(snapshot_download(
        repo_id=source, revision=revision,
        allow_patterns=["*.json", "*.safetensors", "*.bin", "*.model", "*.txt", "*.jinja"],
    ))
    commit = local.name if re.fullmatch(r"[0-9a-f]{40}", local.name) else revision
    return local, commit


def _index_safetensors(file: Path, source: SourceCheckpoint) -> None:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as handle:
        for key in handle.keys():
            piece = handle.get_slice(key)
            source.key_files[key] = file
            source._shapes[key] = tuple(piece.get_shape())
            source._dtypes[key] = _safetensors_dtype(piece.get_dtype())


def _safetensors_dtype(name: str) -> torch.dtype:
    table = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
             "BOOL": torch.bool}
    if name not in table:
        raise ConversionError(f"unsupported safetensors dtype {name!r}")
    return table[name]


def _index_bin(file: Path, source: SourceCheckpoint) -> None:
    tensors = source._load_bin(file)
    for key, value in tensors.items():
        source.key_files[key] = file
        source._shapes[key] = tuple(value.shape)
        source._dtypes[key] = value.dtype


def open_source(source: str, revision: str | None = None) -> SourceCheckpoint:
    """Open a checkpoint directory (or download a Hub id) and index its tensors without loading them."""
    path, commit = _resolve_directory(source, revision)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"no config.json in source directory {path}")
    config = json.loads(config_file.read_text())
    checkpoint = SourceCheckpoint(path=path, source_id=source, revision=commit, config=config)

    files: list[Path] = []
    for index_name in WEIGHT_INDEX_FILES:
        if (path / index_name).is_file():
            weight_map = json.loads((path / index_name).read_text()).get("weight_map", {})
            files = sorted({path / name for name in weight_map.values()})
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise ConversionError(f"{index_name} lists weight files that do not exist: {missing}")
            break
    if not files:
        files = [path / name for name in SINGLE_WEIGHT_FILES if (path / name).is_file()][:1]
    if not files:
        raise ConversionError(
            f"no weights in {path}: expected one of {SINGLE_WEIGHT_FILES} or a sharded index {WEIGHT_INDEX_FILES}"
        )
    for file in files:
        if file.suffix == ".safetensors":
            _index_safetensors(file, checkpoint)
        else:
            _index_bin(file, checkpoint)
    return checkpoint
