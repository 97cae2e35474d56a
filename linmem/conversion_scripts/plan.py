"""The conversion plan and its strict key accounting.

A plan says, for every tensor of the target model, where it comes from: one `TensorRule` (built from
named source tensors by a pure function), or one `NewParameter` (declared, with its initialisation).
Every source tensor must be consumed by a rule or listed in `dropped` with a reason. `check_plan`
enforces all of this against the source headers and the target model's parameter shapes, on meta
tensors, before a single weight is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .source import ConversionError, SourceCheckpoint

#: Bumped whenever a mapping changes what a converted checkpoint contains.
MAPPING_VERSION = "linmem-conversion/1"


@dataclass
class TensorRule:
    """target <- fn(*sources); `action` is "copied" (one source, unchanged) or "reshaped" (anything else)."""

    target: str
    sources: tuple[str, ...]
    fn: Callable[..., torch.Tensor] | None = None
    note: str = ""

    @property
    def action(self) -> str:
        return "copied" if self.fn is None and len(self.sources) == 1 else "reshaped"

    def build(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        if self.fn is None:
            if len(tensors) != 1:
                raise ConversionError(f"rule for `{self.target}` has {len(tensors)} sources and no function")
            return tensors[0]
        return self.fn(*tensors)


@dataclass
class NewParameter:
    """A target tensor with no source. `init` (applied in place, float32) overrides the model's own init."""

    description: str
    init: Callable[[torch.Tensor], None] | None = None
    check: Callable[[torch.Tensor], bool] | None = None


@dataclass
class ConversionPlan:
    """Everything a conversion does, before doing it.

    Attributes:
        target_name: "ccq-gla", "ccq-gdn", "qdelta" or "backbone" (the plain fla layout, for reference models).
        target_config: the linmem config of the converted model.
        rules: target key -> rule.
        new: target key -> declared new parameter.
        dropped: source key -> reason it is not used.
        source_kind: "fla" or "softmax".
        kept_softmax_layers: layer indices that stay softmax attention.
        notes: human-readable decisions worth reading (lossy steps, ignored config fields).
    """

    target_name: str
    target_config: Any
    source_kind: str
    rules: dict[str, TensorRule] = field(default_factory=dict)
    new: dict[str, NewParameter] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    kept_softmax_layers: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, target: str, *sources: str, fn: Callable[..., torch.Tensor] | None = None, note: str = "") -> None:
        if target in self.rules or target in self.new:
            raise ConversionError(f"target key `{target}` is planned twice")
        self.rules[target] = TensorRule(target, tuple(sources), fn, note)

    def declare_new(self, target: str, description: str, init=None, check=None) -> None:
        if target in self.rules or target in self.new:
            raise ConversionError(f"target key `{target}` is planned twice")
        self.new[target] = NewParameter(description, init, check)

    def drop(self, source: str, reason: str) -> None:
        self.dropped[source] = reason

    def consumed_sources(self) -> set[str]:
        return {key for rule in self.rules.values() for key in rule.sources}


def expected_target_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Parameter/buffer shapes of the target model, built on the meta device (no memory, no init)."""
    from transformers import AutoModelForCausalLM

    import linmem  # noqa: F401  (registers the architectures)

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        shapes.pop("lm_head.weight", None)
    return shapes


def check_plan(plan: ConversionPlan, source: SourceCheckpoint) -> dict[str, tuple[int, ...]]:
    """Raise ConversionError naming the first offending key(s); return the target shapes.

    Checks: every rule's sources exist; every source key is consumed or dropped (and not both);
    the planned targets are exactly the model's keys; every built tensor has the model's shape.
    """
    source_keys = set(source.keys())
    for rule in plan.rules.values():
        missing = [key for key in rule.sources if key not in source_keys]
        if missing:
            raise ConversionError(
                f"missing source tensor(s) {missing} needed for target `{rule.target}` "
                f"(source model_type {source.model_type!r}, {source.path})"
            )
    consumed = plan.consumed_sources()
    both = sorted(consumed & set(plan.dropped))
    if both:
        raise ConversionError(f"source key(s) both used and dropped: {both}")
    unknown_drops = sorted(set(plan.dropped) - source_keys)
    if unknown_drops:
        raise ConversionError(f"dropped key(s) not in the source: {unknown_drops}")
    unconsumed = sorted(source_keys - consumed - set(plan.dropped))
    if unconsumed:
        raise ConversionError(
            f"unconsumed source tensor(s) {unconsumed[:10]}{' ...' if len(unconsumed) > 10 else ''}: "
            f"the mapping for model_type {source.model_type!r} does not know them (an unsupported option, or a "
            "checkpoint that does not match its config)"
        )

    target_shapes = expected_target_shapes(plan.target_config)
    planned = set(plan.rules) | set(plan.new)
    not_in_model = sorted(planned - set(target_shapes))
    if not_in_model:
        raise ConversionError(f"planned target key(s) the linmem model does not have: {not_in_model}")
    unplanned = sorted(set(target_shapes) - planned)
    if unplanned:
        raise ConversionError(f"target key(s) with neither a source nor a declared init: {unplanned}")
    for target, rule in plan.rules.items():
        try:
            built = rule.build([source.meta(key) for key in rule.sources])
        except ConversionError:
            raise
        except Exception as error:  # noqa: BLE001 - reported with the key
            raise ConversionError(f"cannot build target `{target}` from {list(rule.sources)}: {error}") from error
        if tuple(built.shape) != target_shapes[target]:
            raise ConversionError(
                f"shape mismatch for target `{target}` (from {list(rule.sources)} with shapes "
                f"{[source.shape(k) for k in rule.sources]}): built {tuple(built.shape)}, the linmem model expects "
                f"{target_shapes[target]}"
            )
    return target_shapes
