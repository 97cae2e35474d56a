"""Shared model classes: `LinmemPreTrainedModel`, `LinmemModel`, `LinmemForCausalLM`.

A variant subclasses these thinly, naming its config class and its mixer builder
(`mixer_builder(config, layer_idx) -> nn.Module`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from ..configuration.base import LinmemConfig
from ..kernels.loss import linear_cross_entropy
from .attention import SoftmaxAttention
from .block import LinmemBlock
from .cache import LinmemCache
from .compat import cache_argument, cache_of, with_cache
from .decode_graph import DECODE_GRAPHS, DecodeGraph, graph_eligible
from .layers import RMSNorm, ShortConvolution, make_embeddings, make_norm
from .packing import FLASH_ATTENTION_KWARGS, packed_layout, positions_within_sequences
from .padding import TokenLayout, token_positions
from .projection import is_plain_linear


class LinmemPreTrainedModel(PreTrainedModel):
    config_class = LinmemConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LinmemBlock"]
    _skip_keys_device_placement = ["past_key_values"]
    _supports_sdpa = True
    _is_stateful = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """transformers' save_pretrained, plus remote code, `auto_map` and a model card (see linmem.hub)."""
        from ..hub import save_model

        return save_model(self, super().save_pretrained, save_directory, *args, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs):
        """transformers' push_to_hub arguments (plus `training_metadata`); uploads what save_pretrained writes."""
        from ..hub import push_model

        return push_model(self, repo_id, **kwargs)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The model builds its own LinmemCache in forward; a DynamicCache cannot hold recurrent state.
        return False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, ShortConvolution):
            init.kaiming_uniform_(module.weight, a=5**0.5)  # nn.Conv1d's default
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, RMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if hasattr(module, "init_special_parameters"):
            module.init_special_parameters()


def _refuse_output_attentions(kwargs: dict[str, Any]) -> None:
    """A clear error instead of a silent None: there are no attention weights to return."""
    if kwargs.pop("output_attentions", None):
        raise ValueError("output_attentions=True: linmem models return no attention weights (their recurrent layers "
                         "have none, and softmax layers run fused attention); use output_hidden_states")


def _validate_input_ids(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, vocab_size: int) -> None:
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of `input_ids` and `inputs_embeds`")
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must be [batch, seq_len], got shape {tuple(input_ids.shape)}")
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"`input_ids` must be int64 or int32, got {input_ids.dtype}")
        # On the CPU the check is free; on a GPU it would cost a host sync per call (the embedding's own bounds
        # check, a device-side assert, remains), and under torch.compile a graph break.
        if input_ids.device.type == "cpu" and input_ids.numel() and not torch.compiler.is_compiling():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= vocab_size:
                raise ValueError(f"`input_ids` holds token id {low if low < 0 else high}, outside the vocabulary "
                                 f"[0, {vocab_size}) of the input embeddings (a tokenizer of another model?)")
    elif inputs_embeds.dim() != 3:
        raise ValueError(f"`inputs_embeds` must be [batch, seq_len, hidden], got shape {tuple(inputs_embeds.shape)}")
    tokens = input_ids if input_ids is not None else inputs_embeds
    if tokens.shape[1] == 0:
        raise ValueError(f"`{'input_ids' if input_ids is not None else 'inputs_embeds'}` has no tokens (shape "
                         f"{tuple(tokens.shape)}): pass at least one position")


def _full_attention_mask(
    attention_mask: torch.Tensor | None, batch: int, seq_len: int, past_length: int
) -> torch.Tensor | None:
    """Validate a 2-D mask and return it covering past + current positions ([B, past + T]) or None."""
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2:
        raise ValueError(
            "`attention_mask` must be a 2-D [batch, past_length + seq_len] padding mask (1 = token, 0 = padding); "
            f"got shape {tuple(attention_mask.shape)}"
        )
    mask_batch, mask_len = attention_mask.shape
    # (explicit comparisons: Dynamo evaluates `in` on a tuple of symbolic sizes wrongly, dynamic shapes)
    if mask_batch != batch or (mask_len != seq_len and mask_len != past_length + seq_len):
        raise ValueError(
            f"`attention_mask` has shape {tuple(attention_mask.shape)}; expected ({batch}, {past_length + seq_len}) "
            f"(past_length={past_length} + seq_len={seq_len}) or ({batch}, {seq_len})"
        )
    if mask_len != past_length + seq_len:
        attention_mask = torch.cat([attention_mask.new_ones(batch, past_length), attention_mask], dim=-1)
    return attention_mask


class LinmemModel(LinmemPreTrainedModel):
    """The decoder stack without the LM head: embeddings -> blocks -> final norm."""

    mixer_builder: Callable[[LinmemConfig, int], nn.Module] | None = None

    def __init__(self, config: LinmemConfig) -> None:
        super().__init__(config)
        if self.mixer_builder is None:
            raise TypeError(f"{type(self).__name__} must set `mixer_builder` (use a variant's model class)")
        self.embeddings = make_embeddings(config)
        self.position_embeddings = (nn.Embedding(config.max_position_embeddings, config.hidden_size)
                                    if config.position_embedding_type == "learned" else None)
        self.layers = nn.ModuleList(
            LinmemBlock(config, i, SoftmaxAttention(config, i) if i in config.attn_layers else type(self).mixer_builder(config, i))
            for i in range(config.num_hidden_layers)
        )
        self.norm = make_norm(config, config.hidden_size)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    @staticmethod
    def _packed_sequences(input_ids, inputs_embeds, attention_mask, position_ids, past_key_values, use_cache,
                          kwargs: dict[str, Any]) -> TokenLayout | None:
        """The layout of a padding-free batch of packed sequences (packing.py), or None."""
        if attention_mask is not None:
            if any(kwargs.get(name) is not None for name in FLASH_ATTENTION_KWARGS):
                raise ValueError("pass either an `attention_mask` or packed-sequence offsets (`cu_seq_lens_q`), "
                                 "not both")
            return None
        batch, seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        packed = packed_layout(position_ids, kwargs, batch, seq_len)
        if packed is not None and (past_key_values is not None or use_cache):
            raise ValueError("packed sequences (restarting `position_ids` or `cu_seq_lens_q`, without an attention "
                             "mask) run without a cache: a row of several sequences has no one state to continue; "
                             "pass use_cache=False and no past_key_values")
        return packed

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: LinmemCache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast | tuple:
        """input_ids [B, T] (or inputs_embeds [B, T, hidden]); attention_mask [B, T] or [B, past + T]."""
        vocab_size = getattr(self.embeddings, "num_embeddings", self.config.vocab_size)
        _validate_input_ids(input_ids, inputs_embeds, vocab_size)
        _refuse_output_attentions(kwargs)
        past_key_values = cache_argument(past_key_values, kwargs)
        if past_key_values is not None and not isinstance(past_key_values, LinmemCache):
            raise TypeError(
                f"`past_key_values` must be a LinmemCache (returned by this model), got {type(past_key_values).__name__}"
                " (a key/value cache, such as PEFT prefix tuning passes, cannot hold recurrent states: use prompt "
                "tuning or LoRA)"
            )
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        packed = self._packed_sequences(input_ids, inputs_embeds, attention_mask, position_ids, past_key_values,
                                        use_cache, kwargs)
        if packed is not None:
            use_cache = False
            if position_ids is None and (self.position_embeddings is not None or self.config.attn_layers):
                position_ids = positions_within_sequences(packed)
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if self.gradient_checkpointing and self.training:
            use_cache = False

        hidden_states = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq_len = hidden_states.shape[:2]
        if use_cache and past_key_values is None:
            past_key_values = LinmemCache(self.config.num_hidden_layers)
        cache = past_key_values if use_cache else None
        past_length = cache.get_seq_length() if cache is not None else 0

        full_mask = _full_attention_mask(attention_mask, batch, seq_len, past_length)
        # Compiled without a cache (training), a padded batch packs every position (one graph for every padding);
        # with a cache, the rows' states need the exact pack (a graph break where it is built).
        static = torch.compiler.is_compiling() and cache is None
        layout = TokenLayout.from_mask(full_mask[:, -seq_len:], static) if full_mask is not None else packed
        # Positions feed only learned position tables and softmax layers: a purely recurrent model skips the
        # cumsum over the whole (growing) mask at every decode step.
        if position_ids is None and (self.position_embeddings is not None or self.config.attn_layers):
            position_ids = token_positions(full_mask, batch, seq_len, past_length, hidden_states.device)
        if self.position_embeddings is not None:
            limit = self.config.max_position_embeddings
            # Checked on the host in eager mode only: compiled graphs would break at the read, and their indexing
            # has its own bounds check (a device-side assert on CUDA, Inductor's indirect-indexing assert on CPU).
            last = int(position_ids.max()) if seq_len and not torch.compiler.is_compiling() else 0
            if last >= limit:
                raise ValueError(f"position {last} is beyond the learned position table "
                                 f"(max_position_embeddings={limit})")
            hidden_states = hidden_states + self.position_embeddings(position_ids)

        all_hidden_states = () if output_hidden_states else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states = layer(hidden_states, layout=layout, attention_mask=full_mask, past_key_values=cache,
                                  position_ids=position_ids, past_length=past_length)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        if cache is not None:
            cache.advance(seq_len)

        if not return_dict:
            return tuple(v for v in (hidden_states, cache, all_hidden_states) if v is not None)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, hidden_states=all_hidden_states,
                                       **with_cache(cache))


class LinmemForCausalLM(LinmemPreTrainedModel, GenerationMixin):
    """Causal LM head on a `LinmemModel`; set `base_model_class` in a variant subclass."""

    base_model_class: type[LinmemModel] = LinmemModel
    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}

    def __init__(self, config: LinmemConfig) -> None:
        super().__init__(config)
        self.model = self.base_model_class(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def one_token_logits(self, input_ids: torch.Tensor, cache: LinmemCache) -> torch.Tensor:
        """Logits [B, 1, vocab] of one decode step (the eager step a decode graph captures)."""
        hidden = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True, return_dict=True)
        return self.lm_head(hidden.last_hidden_state)

    def _graph_step(self, input_ids: torch.Tensor, cache: LinmemCache) -> torch.Tensor:
        graph = DECODE_GRAPHS.get(self)
        if graph is None or not graph.matches(self, cache, input_ids):
            DECODE_GRAPHS.pop(self, None)  # frees the old graph's memory pool before capturing the new one
            DECODE_GRAPHS[self] = graph = DecodeGraph(self, cache, input_ids)
        return graph.step(input_ids, cache)

    def generate(self, *args, **kwargs):
        """`GenerationMixin.generate`, refusing assisted, prompt-lookup and early-exit decoding up front: they roll the
        cache back past rejected draft tokens, which a recurrent state cannot do."""
        config = kwargs.get("generation_config") or self.generation_config
        drafted = [name for name in ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")
                   if kwargs.get(name) is not None or getattr(config, name, None) is not None]
        if drafted:
            raise ValueError(f"{', '.join(drafted)}: assisted (speculative) decoding is unsupported by linmem models, "
                             "whose recurrent state cannot be rolled back past rejected draft tokens; generate "
                             "without it")
        return super().generate(*args, **kwargs)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None,
                                      inputs_embeds=None, **kwargs):
        # Feed only the positions the recurrent state has not consumed yet (robust across versions
        # whatever slicing `generate` asks for).
        cache = cache_argument(past_key_values, kwargs)
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **with_cache(cache), **kwargs,
        )
        if isinstance(cache, LinmemCache) and cache.get_seq_length() > 0:
            consumed = cache.get_seq_length()
            if model_inputs.get("input_ids") is not None and input_ids.shape[1] > consumed:
                model_inputs["input_ids"] = input_ids[:, consumed:].contiguous()
                model_inputs.pop("inputs_embeds", None)
        return model_inputs

    def _fused_loss_applies(self) -> bool:
        """config.fuse_linear_cross_entropy in training mode (evaluation keeps its logits), with a plain bias-free LM
        head (a LoRA- or otherwise wrapped head keeps its own forward)."""
        return (self.config.fuse_linear_cross_entropy and self.training and is_plain_linear(self.lm_head)
                and self.lm_head.bias is None)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: LinmemCache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple:
        """Logits [B, T', vocab] (T' = T, or logits_to_keep); loss when labels [B, T] are given (-100 ignored)."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        _refuse_output_attentions(kwargs)
        past_key_values = cache_argument(past_key_values, kwargs)
        if use_cache is not False and graph_eligible(self, input_ids, attention_mask, past_key_values, dict(
                inputs_embeds=inputs_embeds, labels=labels, output_hidden_states=output_hidden_states)):
            logits = self._graph_step(input_ids, past_key_values)
            if not return_dict:
                return (logits, past_key_values)
            return CausalLMOutputWithPast(logits=logits, **with_cache(past_key_values))
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
            output_hidden_states=output_hidden_states, return_dict=True,
            **{name: kwargs.pop(name) for name in FLASH_ATTENTION_KWARGS if name in kwargs},
        )
        hidden_states = outputs.last_hidden_state
        if labels is not None and labels.shape != hidden_states.shape[:2]:
            raise ValueError(f"`labels` must have shape {tuple(hidden_states.shape[:2])}, got {tuple(labels.shape)}")
        loss = logits = None
        if labels is not None and self._fused_loss_applies():
            loss = linear_cross_entropy(hidden_states, self.lm_head.weight, labels,
                                        num_items_in_batch=kwargs.get("num_items_in_batch"))
        else:
            keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
            logits = self.lm_head(hidden_states[:, keep, :])
            if labels is not None:
                loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        if not return_dict:
            output = (logits, cache_of(outputs), outputs.hidden_states)
            output = tuple(v for v in output if v is not None)
            return (loss,) + output if loss is not None else output
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                                      **with_cache(cache_of(outputs)))
