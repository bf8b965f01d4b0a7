"""Attach a LoRA adapter (peft) to the language model of a VLM — never to the vision tower.

Why a regex and not peft's list of names: Qwen2.5-VL's vision blocks also have `gate_proj`,
`up_proj`, `down_proj`, and a plain name list would put LoRA on them too. The regex matches the
projections by name but rejects every module whose path mentions `visual`/`vision`.

The reference policy of GRPO is the same network with the adapter switched off
(`with model.disable_adapter():`), so no second model sits in memory.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def target_regex(names: Sequence[str] = DEFAULT_TARGETS) -> str:
    """A peft `target_modules` regex: the named linear layers of the language model only."""
    alternatives = "|".join(re.escape(n) for n in names)
    return rf"^(?!.*(?:visual|vision)).*\.(?:{alternatives})$"


def attach_lora(model: torch.nn.Module, *, r: int = 16, alpha: int = 32, dropout: float = 0.05,
                target_modules: Sequence[str] | str = DEFAULT_TARGETS, gradient_checkpointing: bool = False,
                seed: int | None = None):
    """Wrap `model` in a fresh peft LoRA adapter. Only the adapter's parameters require grad.

    `target_modules` is a list of short module names (turned into the vision-excluding regex) or a
    ready regex string. With `seed`, the adapter's random A matrices do not depend on the caller's
    RNG state.
    """
    from peft import LoraConfig, get_peft_model

    regex = target_modules if isinstance(target_modules, str) else target_regex(target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=regex,
                        bias="none", task_type="CAUSAL_LM")
    with _quiet_peft(), torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    _check_no_vision_lora(peft_model)
    if gradient_checkpointing:
        enable_gradient_checkpointing(peft_model)
    return peft_model


def load_lora(model: torch.nn.Module, adapter_dir: str | Path, *, trainable: bool = True,
              gradient_checkpointing: bool = False):
    """Wrap `model` with a saved adapter (PEFT format), trainable to continue training."""
    from peft import PeftModel

    with _quiet_peft():
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    if gradient_checkpointing:
        enable_gradient_checkpointing(peft_model)
    return peft_model


def merge_adapter(model: torch.nn.Module, adapter_dir: str | Path) -> torch.nn.Module:
    """The base `model` with a saved adapter merged into its weights (a plain model again, no peft wrapper).

    Used to start a job from a fine-tuned model: the merged weights are that model exactly (up to the
    weight dtype's rounding), and a new adapter can be attached on top.
    """
    from peft import PeftModel

    with _quiet_peft():
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False).merge_and_unload()


def compose_adapters(first: str | Path, second: str | Path, out: str | Path, *, skip: tuple[str, ...] = ()) -> Path:
    """One adapter equal to `first` merged into the base and `second` trained on top: the sum of their
    weight deltas, as a single LoRA of rank r₁ + r₂ that loads on the plain base model.

    A job that started from a fine-tuned model exports this, so its adapter stands alone wherever an
    adapter is served (our chat, vLLM, peft) and can itself be the start of another job. Exact, not an
    approximation: with scales sᵢ = αᵢ / rᵢ, ΔW = s₁B₁A₁ + s₂B₂A₂ = [s₁B₁ | s₂B₂] · [A₁; A₂], saved with
    α = r so peft's scale is 1. A module only one adapter touches gets zeros in the other's rows.
    `out` receives `second`'s other files (processor, metrics; not those named in `skip`) with the
    composed weights and config.
    """
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    first, second, out = Path(first), Path(second), Path(out)
    configs = [json.loads((d / "adapter_config.json").read_text()) for d in (first, second)]
    for config, where in zip(configs, (first, second), strict=True):
        if config.get("use_dora") or config.get("use_rslora") or config.get("rank_pattern") \
                or config.get("alpha_pattern"):
            raise ValueError(f"{where}: only plain LoRA adapters (one rank and alpha) can be composed")
    weights = [load_file(str(d / "adapter_model.safetensors")) for d in (first, second)]
    ranks = [int(c["r"]) for c in configs]
    scales = [float(c["lora_alpha"]) / r for c, r in zip(configs, ranks, strict=True)]
    modules = sorted({k.removesuffix(".lora_A.weight") for w in weights for k in w if k.endswith(".lora_A.weight")})
    composed: dict[str, torch.Tensor] = {}
    for module in modules:
        a_parts, b_parts = [], []
        for w, r, scale in zip(weights, ranks, scales, strict=True):
            a, b = w.get(f"{module}.lora_A.weight"), w.get(f"{module}.lora_B.weight")
            if a is None:  # this adapter leaves the module alone: zero rows that change nothing
                other = next(x for x in weights if f"{module}.lora_A.weight" in x)
                ref_a, ref_b = other[f"{module}.lora_A.weight"], other[f"{module}.lora_B.weight"]
                a, b, scale = ref_a.new_zeros(r, ref_a.shape[1]), ref_b.new_zeros(ref_b.shape[0], r), 0.0
            a_parts.append(a.float())
            b_parts.append(b.float() * scale)
        dtype = next(w[f"{module}.lora_A.weight"].dtype for w in weights if f"{module}.lora_A.weight" in w)
        composed[f"{module}.lora_A.weight"] = torch.cat(a_parts, dim=0).to(dtype).contiguous()
        composed[f"{module}.lora_B.weight"] = torch.cat(b_parts, dim=1).to(dtype).contiguous()
    targets = [c["target_modules"] for c in configs]
    union = targets[1] if targets[0] == targets[1] else _union_targets(targets[0], targets[1])
    config = {**configs[1], "r": sum(ranks), "lora_alpha": sum(ranks), "target_modules": union}
    out.mkdir(parents=True, exist_ok=True)
    for item in second.iterdir():
        if item.is_file() and item.name not in ("adapter_config.json", "adapter_model.safetensors", *skip):
            shutil.copy2(item, out / item.name)
    save_file(composed, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out


def _union_targets(a, b) -> str | list[str]:
    """peft target_modules matching what either adapter targets (lists merge; regexes alternate)."""
    if isinstance(a, list) and isinstance(b, list):
        return sorted(set(a) | set(b))
    as_regex = [t if isinstance(t, str) else rf".*\.(?:{'|'.join(re.escape(n) for n in t)})$" for t in (a, b)]
    return f"(?:{as_regex[0]})|(?:{as_regex[1]})"


def enable_gradient_checkpointing(peft_model) -> None:
    """Checkpoint the decoder layers, in a way that works with a frozen base + LoRA.

    With the base frozen, the embedding output does not require grad, and reentrant checkpointing
    would then drop every gradient inside the checkpointed layers (the crash/no-learning of
    Visual-RFT issue #147). We use non-reentrant checkpointing *and* make the input embeddings
    require grad, which covers both implementations.
    """
    base = peft_model.get_base_model()
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # transformers ≥ 5.2x name
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    peft_model.enable_input_require_grads()


def lora_parameters(peft_model) -> dict[str, torch.Tensor]:
    """The trainable adapter tensors by name (what the optimizer sees)."""
    return {n: p for n, p in peft_model.named_parameters() if p.requires_grad}


@contextlib.contextmanager
def _quiet_peft():
    """peft reads transformers' deprecated `is_gradient_checkpointing`; its FutureWarning is noise to us."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _check_no_vision_lora(peft_model) -> None:
    bad = [n for n, _ in peft_model.named_parameters() if "lora_" in n and ("visual" in n or "vision" in n)]
    if bad:
        raise ValueError(f"LoRA target modules reach into the vision tower: {bad[:3]}")
    if not any("lora_" in n for n, _ in peft_model.named_parameters()):
        raise ValueError("LoRA target modules matched no layer of the language model")
