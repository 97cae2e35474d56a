"""The README model card: valid YAML front matter and the listed fields, with numbers checked against the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard, hf_hub_download

import linmem
from linmem import cache_of
from linmem.export.model_card import CARD_MARKER
from linmem.export.state_size import state_size
from tests.conftest_hub import LocalHub, local_hub  # noqa: F401  (fixture)
from tests.variants import make_model


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _live_cache(model, length: int):
    ids = torch.randint(3, 96, (1, length), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        return cache_of(model(ids, use_cache=True))


@pytest.mark.parametrize("name, overrides", [
    ("ccq-gla", {}), ("ccq-gdn", {"ccq_center": True}), ("ccq-gdn", {"ccq": False}),
    ("ccq-gdn-hybrid", {}), ("qdelta-deltanet", {}), ("qdelta-hybrid", {}),
])
def test_state_bytes_match_the_live_cache(name: str, overrides: dict) -> None:
    model = make_model(name, dtype=torch.float32, **overrides)
    size = state_size(model.config, activation_bytes=4)
    short, long = _live_cache(model, 5), _live_cache(model, 23)
    assert short.recurrent_state_bytes() == long.recurrent_state_bytes() == size.recurrent
    assert long.attention_cache_bytes() == 23 * size.attention_per_token
    assert (size.attention_per_token > 0) == bool(model.config.attn_layers)


@pytest.mark.parametrize("name, paper", [("ccq-gdn-hybrid", "https://arxiv.org/abs/2606.01294"),
                                         ("qdelta", "https://arxiv.org/abs/2606.08804")])
def test_saved_card_has_every_field(name: str, paper: str, tmp_path: Path) -> None:
    model = make_model(name, dtype=torch.float32)
    metadata = {"dataset": "pydoc_data.topics", "steps": 300, "learning_rate": 3e-4, "license": "apache-2.0"}
    model.save_pretrained(tmp_path, training_metadata=metadata)
    text = (tmp_path / "README.md").read_text()
    meta = _front_matter(text)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert {"linmem", model.config.model_type, "custom_code", f"arxiv:{paper.rsplit('/', 1)[1]}"} <= set(meta["tags"])
    assert meta["license"] == "apache-2.0"
    assert ModelCard(text).data.library_name == "transformers"  # huggingface_hub parses it too
    assert CARD_MARKER in text
    assert f"]({paper})" in text
    assert f"| `num_heads` | `{model.config.num_heads}` |" in text and f"| `model_type` | `'{model.config.model_type}'` |" in text
    assert f"**{model.num_parameters():,}**" in text
    assert f"**{state_size(model.config, 4).recurrent:,} bytes" in text
    if model.config.attn_layers:
        assert f"{state_size(model.config, 4).attention_per_token:,} bytes of K/V per token" in text
    assert "trust_remote_code=True" in text and "import linmem" in text
    assert all(f'"{target}"' in text for target in linmem.LORA_TARGET_MODULES)
    assert "## Training" in text and "| steps | 300 |" in text and "| dataset | pydoc_data.topics |" in text


def test_metadata_attribute_and_foreign_readme(tmp_path: Path) -> None:
    model = make_model("ccq-gla", dtype=torch.float32)
    model.training_metadata = {"tokens_seen": 12345}
    model.save_pretrained(tmp_path / "a")
    assert "| tokens_seen | 12345 |" in (tmp_path / "a" / "README.md").read_text()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "README.md").write_text("# my own card\n")
    model.save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "README.md").read_text() == "# my own card\n"
    assert (tmp_path / "b" / "modeling_linmem.py").is_file()


def test_pushed_card(local_hub: LocalHub, tmp_path: Path) -> None:
    model = make_model("qdelta", dtype=torch.float32)
    model.push_to_hub("user/card", tags=["my-tag"], training_metadata={"steps": 7})
    text = Path(hf_hub_download("user/card", "README.md")).read_text()
    assert 'from_pretrained("user/card", trust_remote_code=True)' in text
    assert "my-tag" in _front_matter(text)["tags"] and "| steps | 7 |" in text
    # A README written on the Hub by a person (no marker) survives the next push.
    HfApi().upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# hand written\n", path_in_repo="README.md",
                        repo_id="user/card")
    model.push_to_hub("user/card")
    text = Path(hf_hub_download("user/card", "README.md", force_download=True)).read_text()
    assert text.endswith("# hand written\n")
