"""One batch, many adapters: each row of a forward goes through its own prompt's LoRA adapter.

peft's LoRA layers take an `adapter_names` argument, one name per row of their input (`"__base__"`
for none), and then run the base layer once for the whole batch and each adapter's B·A only on its
own rows (peft's "mixed adapter batches"). `PeftModel.forward` sets that argument through forward
pre-hooks; the rollout engine calls the trunk directly (it needs the hidden states and its own static
cache), so `AdapterRoutes` registers the pre-hooks itself, once per engine call, and the engine says
before each forward which prompt each row of that forward's batch belongs to
(`engine.sample(before_forward=routes)`). The base weights' matmuls, which are nearly all of the
work, are then shared by requests for different adapters instead of running once per adapter.

Only the language model's LoRA layers are routed: the vision tower runs before the engine's
forwards, over image patches rather than rows (and our adapters do not touch it).
"""

from __future__ import annotations

from typing import Any

import torch

from workers.training.rollout import backbone_and_head

BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


class AdapterRoutes:
    """`names[b]`: the peft adapter name of prompt b, or BASE. Use as a context manager around the
    engine call, and pass the object itself as `before_forward`."""

    def __init__(self, model, names: list[str]):
        from peft.tuners.lora import LoraLayer

        self.names = names
        self.current: list[str] = []
        trunk, _ = backbone_and_head(model)
        self.layers = [m for m in trunk.language_model.modules() if isinstance(m, LoraLayer)]
        self.handles: list[Any] = []

    def __enter__(self) -> AdapterRoutes:
        self.handles = [layer.register_forward_pre_hook(self._hook, with_kwargs=True) for layer in self.layers]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def _hook(self, module, args, kwargs):
        return args, {**kwargs, "adapter_names": self.current}

    def __call__(self, prompt_of_row: torch.Tensor) -> None:
        self.current = [self.names[i] for i in prompt_of_row.tolist()]
