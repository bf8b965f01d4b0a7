"""Decoding chat prompts: the rollout engine where it applies, Hugging Face `generate` where it does not.

`workers.training.engine.sample` decodes prompts with exactly one image each (it hands image i to
prompt i). A text-only prompt fails inside it (IndexError: no image features to select) and a
prompt with two images fails in the model ("Image features and image tokens do not match"), so
those go to `generate`, which takes the processor's `pixel_values` / `image_grid_thw` for any number
of images per prompt. Both use `generate`'s sampling semantics and the family's EOS/pad/suppressed
tokens, so one request decodes the same way on either path (greedy is token-for-token equal,
tests/training/test_engine.py).

What the engine would need to take these too: `ImageInputs.for_rows` mapping each prompt to its
*list* of images (select several `pooler_output` entries per prompt, none for text-only), and
`sample` passing no vision inputs when the batch has no images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import GenerationConfig

from workers.inference.prompts import ChatPrompt, encode, prompt_batch
from workers.inference.streams import GenerateStreamer, RowStreams
from workers.training import engine
from workers.training.algo import completion_mask
from workers.training.model import LoadedModel
from workers.training.rollout import decode_completions, image_features


@dataclass(frozen=True)
class Sampling:
    n: int  # completions per prompt
    max_new_tokens: int
    temperature: float  # 0 → greedy
    top_p: float

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Completion:
    text: str
    tokens: int  # generated tokens, the EOS included
    hit_eos: bool


@dataclass
class Decoded:
    prompt_tokens: int
    completions: list[Completion]  # n of them


def uses_engine(prompt: ChatPrompt) -> bool:
    return len(prompt.images) == 1


def _options(loaded: LoadedModel, sampling: Sampling) -> dict:
    return dict(tokenizer=loaded.processor.tokenizer, max_new_tokens=sampling.max_new_tokens,
                eos_token_ids=loaded.eos_token_ids, pad_token_id=loaded.pad_token_id,
                temperature=sampling.temperature if not sampling.greedy else 1.0, top_p=sampling.top_p,
                do_sample=not sampling.greedy, suppressed_token_ids=loaded.suppressed_token_ids)


def _split(loaded: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, texts: list[str],
           prompt_tokens: list[int], n: int) -> list[Decoded]:
    """(B·n, T) completions of B prompts → one `Decoded` per prompt."""
    eos = torch.tensor(loaded.eos_token_ids, device=ids.device)
    kept = mask.sum(dim=1).long().tolist()
    hit = (torch.isin(ids, eos) & mask.bool()).any(dim=1).tolist()
    out = []
    for b, count in enumerate(prompt_tokens):
        rows = range(b * n, (b + 1) * n)
        out.append(Decoded(count, [Completion(texts[r], kept[r], bool(hit[r])) for r in rows]))
    return out


def decode_with_engine(model, loaded: LoadedModel, processor, prompts: list[ChatPrompt],
                       sampling: Sampling, streams: RowStreams | None = None,
                       routes: Callable[[torch.Tensor], None] | None = None) -> list[Decoded]:
    """Prompts with one image each, decoded together in one engine call (prefill once per prompt).
    `streams`: row b·n + j (prompt b's completion j) gets its tokens as they are decoded. `routes`: the
    engine's `before_forward`, for prompts that ask for different adapters (workers/inference/routes.py)."""
    batch = prompt_batch(processor, prompts, next(model.parameters()).device)
    rollouts = engine.sample(model, batch, image_features(model, batch), group_size=sampling.n,
                             on_tokens=streams.on_tokens if streams else None, before_forward=routes,
                             **_options(loaded, sampling))
    prompt_tokens = batch.attention_mask.sum(dim=1).long().tolist()
    return _split(loaded, rollouts.completion_ids, rollouts.completion_mask, rollouts.texts, prompt_tokens,
                  sampling.n)


@torch.no_grad()
def decode_with_generate(model, loaded: LoadedModel, processor, prompt: ChatPrompt, sampling: Sampling,
                         streams: RowStreams | None = None) -> Decoded:
    """One prompt with no image or several, `n` completions in one `generate` call (`streams`: its
    n rows, fed as they are decoded)."""
    enc = encode(processor, [prompt], next(model.parameters()).device)
    opts = _options(loaded, sampling)
    # A fresh config, as the trainer's: a checkpoint's generation_config must not change sampling.
    config = GenerationConfig(
        max_new_tokens=sampling.max_new_tokens, do_sample=not sampling.greedy,
        temperature=opts["temperature"] if not sampling.greedy else None,
        top_p=sampling.top_p if not sampling.greedy else None, top_k=0 if not sampling.greedy else None,
        eos_token_id=list(loaded.eos_token_ids), pad_token_id=loaded.pad_token_id,
        suppress_tokens=list(loaded.suppressed_token_ids) or None, num_return_sequences=sampling.n,
        use_cache=True)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "mm_token_type_ids",
                                                    "pixel_values", "image_grid_thw")}
    out = model.generate(**inputs, generation_config=config, streamer=GenerateStreamer(streams) if streams else None)
    ids = out[:, enc["input_ids"].shape[1]:]
    if ids.shape[1] == 0:
        ids = torch.full((sampling.n, 1), loaded.pad_token_id, device=out.device)
    mask = completion_mask(ids, loaded.eos_token_ids)
    texts = decode_completions(loaded.processor.tokenizer, ids, mask, loaded.eos_token_ids)
    return _split(loaded, ids, mask, texts, [int(enc["attention_mask"].sum())], sampling.n)[0]
