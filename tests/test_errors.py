"""Bad input gets a clear error naming the problem."""

from __future__ import annotations

import pytest
import torch

from linmem import CCQConfig, QDeltaConfig

from .variants import make_model


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(head_dim=0), "head_dim"),
        (dict(num_heads=-1), "num_heads"),
        (dict(backbone="mamba"), "backbone"),
        (dict(num_hidden_layers=2, attn_layers=[2]), "attn_layers"),
        (dict(num_hidden_layers=2, attn_layers=[1, 1]), "attn_layers"),
        (dict(attn_layers=[0], attn_num_heads=4, attn_num_kv_heads=3), "attn_num_kv_heads"),
        (dict(ccq_init_scale=2.0), "ccq_init_scale"),
        (dict(head_dim=3, expand_v=0.5), "expand_v"),
        (dict(attn_window_size=0), "attn_window_size"),
    ],
)
def test_invalid_ccq_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        CCQConfig(**kwargs)


def test_invalid_qdelta_config_names_the_field():
    with pytest.raises(ValueError, match="`lamb_init_scale`"):
        QDeltaConfig(lamb_init_scale=-0.1)


def test_attention_mask_of_wrong_shape():
    model = make_model("ccq-gdn")
    x = torch.randint(3, 96, (2, 6))
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.ones(3, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask"):
        model(x, attention_mask=torch.ones(2, 1, 6, 6))


def test_bad_model_inputs():
    model = make_model("ccq-gla")
    with pytest.raises(ValueError, match="exactly one of"):
        model()
    with pytest.raises(TypeError, match="input_ids"):
        model(torch.ones(2, 3))
    with pytest.raises(TypeError, match="LinmemCache"):
        model(torch.ones(1, 3, dtype=torch.long), past_key_values=object(), use_cache=True)
    with pytest.raises(ValueError, match="labels"):
        model(torch.ones(1, 3, dtype=torch.long), labels=torch.ones(1, 4, dtype=torch.long))


def test_token_ids_outside_the_vocabulary_and_empty_inputs():
    model = make_model("qdelta")
    vocab = model.get_input_embeddings().num_embeddings
    for bad in (vocab, -1):
        ids = torch.randint(3, 96, (2, 5))
        ids[1, 2] = bad
        with pytest.raises(ValueError, match=f"token id {bad}, outside the vocabulary"):
            model(ids)
    with pytest.raises(ValueError, match="`input_ids` has no tokens"):
        model(torch.ones(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="`inputs_embeds` has no tokens"):
        model(inputs_embeds=torch.ones(2, 0, model.config.hidden_size, dtype=model.dtype))
    model.resize_token_embeddings(vocab + 8)  # the bound follows the embeddings
    assert model(torch.full((1, 3), vocab + 7)).logits.shape == (1, 3, vocab + 8)


@pytest.mark.parametrize("name", ["ccq-gdn", "qdelta-hybrid"])
def test_output_attentions_is_refused_not_ignored(name):
    model = make_model(name)
    x = torch.randint(3, 96, (1, 5))
    with pytest.raises(ValueError, match="output_attentions"):
        model(x, output_attentions=True)
    with pytest.raises(ValueError, match="output_attentions"):
        model.generate(x, max_new_tokens=2, output_attentions=True, return_dict_in_generate=True)
    assert model(x, output_attentions=False).logits.shape == (1, 5, 96)
