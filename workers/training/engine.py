"""The rollout engine: prefill each prompt once, fan its cache out to G rows, decode over a static cache.

Hugging Face `generate` on N = B × G rows prefills every prompt G times and pays Python and kernel-launch
overhead per token step (on an H200 it managed 3.7–5.0k tokens/s where the memory-bandwidth floor of a
2B model at batch 128 is ~80k; VISUAL_RFT.md). This loop does the same sampling with less work:

1. **Prefill once per prompt.** The B prompts (one image each, encoded once by `image_features`) run
   through the model once; their keys/values are copied into a pre-allocated cache of N rows, row
   r = prompt r // G (the G completions of a prompt share its keys/values exactly).
2. **Static cache.** Keys/values live in tensors allocated once per call, (N, kv_heads, P + max_new,
   head_dim) per layer; a token step writes one column in place (`StaticKV.update`).
3. **Finished rows stop costing work.** When enough rows have emitted an EOS, the batch is compacted:
   the cache, positions and masks keep only the live rows (on CUDA graphs, to the next power-of-two
   bucket, so each bucket is captured once). The loop ends when every row is done.
4. **CUDA graphs.** On CUDA the token step (embeddings → trunk → lm_head) is captured once per bucket
   and replayed; sampling stays outside the graph (a few small kernels over the logits). Anything that
   refuses to be captured falls back to the eager loop for that call, with a warning.

Sampling semantics are `generate`'s: suppressed tokens (image placeholders) get −inf, then temperature,
then top-p (smallest set of tokens whose probability reaches p, at least one), then one multinomial
draw per row from torch's global generator (so a seeded run is reproducible and exact resume, which
restores that generator, still holds); greedy takes the argmax of the suppressed logits. After its
first EOS a row emits `pad_token_id`. Greedy decoding is token-for-token `generate`'s on CPU for all
three families (tests/training/test_engine.py).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from workers.training.algo import completion_mask
from workers.training.packing import group_mask, prompt_positions
from workers.training.rollout import (
    ImageInputs,
    PromptBatch,
    Rollouts,
    backbone_and_head,
    decode_completions,
    generate_rollouts,
)


def cache_argument(module, cache) -> dict[str, Any]:
    """`{"cache": cache}`, or `{"past_key_values": cache}` for a transformers that predates the rename."""
    name = "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
    return {name: cache}


class StaticKV:
    """A key/value cache the model's attention layers write through `update` (their only call on it).

    Per layer (rows, kv_heads, capacity, head_dim). `write` is the column the next token goes to — a
    device tensor, so a captured graph reads the value of each replay. In eager mode `visible` trims
    what attention reads to the columns written so far; under graphs it stays None (static shapes,
    the mask hides the unwritten tail).
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], write: torch.Tensor):
        self.keys, self.values, self.write = keys, values, write
        self.visible: int | None = None
        self.recording = False  # prefill: store the prompt's states as they come, attend within them

    @classmethod
    def recorder(cls) -> StaticKV:
        cache = cls([], [], torch.zeros(1, dtype=torch.long))
        cache.recording = True
        return cache

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.recording:
            self.keys.append(key_states)
            self.values.append(value_states)
            return key_states, value_states
        self.keys[layer_idx].index_copy_(2, self.write, key_states)
        self.values[layer_idx].index_copy_(2, self.write, value_states)
        if self.visible is None:
            return self.keys[layer_idx], self.values[layer_idx]
        return self.keys[layer_idx][:, :, :self.visible], self.values[layer_idx][:, :, :self.visible]

    def fan_out(self, rows: torch.Tensor, capacity: int) -> StaticKV:
        """A static cache of len(rows) rows holding the recorded prompt states of `rows`, room for `capacity`."""
        keys, values = [], []
        for k, v in zip(self.keys, self.values, strict=True):
            P = k.shape[2]
            big_k = k.new_zeros(len(rows), k.shape[1], capacity, k.shape[3])
            big_v = v.new_zeros(len(rows), v.shape[1], capacity, v.shape[3])
            big_k[:, :, :P] = k[rows]
            big_v[:, :, :P] = v[rows]
            keys.append(big_k)
            values.append(big_v)
        return StaticKV(keys, values, torch.zeros(1, dtype=torch.long, device=rows.device))

    def select(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (compaction), in place of the tensors (a new graph is captured for the new shape)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]


def process_logits(logits: torch.Tensor, *, suppressed: list[int], temperature: float, top_p: float,
                   do_sample: bool, generators: list[torch.Generator] | None = None,
                   prompt_of_row: torch.Tensor | None = None, alive: torch.Tensor | None = None) -> torch.Tensor:
    """(n, V) fp32 logits → next tokens (n,), with `generate`'s processors in `generate`'s order.

    With `generators` (one per prompt) each prompt's live rows draw from its own stream, so what a prompt
    samples does not depend on the other prompts in the batch (data parallelism: on whichever rank it is);
    rows not `alive` then draw nothing (their token is never used)."""
    if suppressed:
        logits[:, suppressed] = float("-inf")
    if not do_sample:
        return logits.argmax(dim=-1)
    if temperature != 1.0:
        logits = logits / temperature
    if top_p < 1.0:
        ordered, order = torch.sort(logits, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - top_p)
        drop[:, -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = logits.softmax(dim=-1)
    if generators is None:
        return torch.multinomial(probs, num_samples=1).squeeze(1)
    tokens = torch.zeros(probs.shape[0], dtype=torch.long, device=probs.device)
    live = alive if alive is not None else torch.ones_like(tokens, dtype=torch.bool)
    for prompt in prompt_of_row[live].unique().tolist():
        rows = ((prompt_of_row == prompt) & live).nonzero().squeeze(1)
        tokens[rows] = torch.multinomial(probs[rows], num_samples=1, generator=generators[prompt]).squeeze(1)
    return tokens


@dataclass
class _Live:
    """The rows still decoding, and their per-row state (all indexed by live position)."""

    rows: torch.Tensor  # (n,) original row numbers
    positions: torch.Tensor  # (3, n, 1) RoPE position of the next input token
    mask: torch.Tensor  # (n, 1, 1, capacity) which cache columns each row may attend to


class _Step:
    """One token step for a fixed set of live rows: eager, or a CUDA graph replayed over static buffers."""

    def __init__(self, trunk, head, cache: StaticKV, live: _Live, use_graph: bool):
        self.trunk, self.head, self.cache = trunk, head, cache
        self.graph = None
        if use_graph:
            n = live.rows.shape[0]
            self.tokens = torch.zeros(n, 1, dtype=torch.long, device=live.positions.device)
            self.positions = live.positions.clone()
            self.mask = live.mask.clone()
            self.graph = self._capture()

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.trunk.language_model(input_ids=tokens, position_ids=positions, attention_mask=mask,
                                           use_cache=False, **cache_argument(self.trunk.language_model, self.cache)
                                           ).last_hidden_state  # (n, 1, H)
        return self.head(hidden[:, -1]).float()  # (n, V)

    def _capture(self):
        # Warm up on a side stream (lazy inits, cuBLAS workspaces), then capture. Warm-up writes go to
        # the current `write` column, which the real step overwrites.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._forward(self.tokens, self.positions, self.mask)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits = self._forward(self.tokens, self.positions, self.mask)
        return graph

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, column: int) -> torch.Tensor:
        if self.graph is None:  # eager: attend over the columns written so far only
            self.cache.visible = column + 1
            return self._forward(tokens[:, None], positions, mask[..., :column + 1])
        self.tokens.copy_(tokens[:, None])
        self.positions.copy_(positions)
        self.mask.copy_(mask)
        self.graph.replay()
        return self.logits.clone()


def _bucket(n: int, current: int, buckets: bool) -> int:
    """Rows to compact to for n live rows, or `current` to leave the batch as it is."""
    if n == current:
        return current
    if buckets:  # power-of-two buckets: under CUDA graphs each is captured once
        size = 1
        while size < n:
            size *= 2
        return min(size, current)
    return n if n <= current * 3 // 4 else current  # eager: compact once a quarter of the rows are done


@torch.no_grad()
def sample(model, batch: PromptBatch, images: ImageInputs, *, tokenizer, group_size: int, max_new_tokens: int,
           eos_token_ids: list[int], pad_token_id: int, temperature: float = 1.0, top_p: float = 1.0,
           do_sample: bool = True, suppressed_token_ids: list[int] | None = None,
           cuda_graphs: bool = True, bucketed: bool | None = None,
           generators: list[torch.Generator] | None = None,
           on_tokens: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
           before_forward: Callable[[torch.Tensor], None] | None = None) -> Rollouts:
    """`group_size` completions per prompt (greedy when do_sample=False) → `Rollouts`, like `generate_rollouts`.

    `bucketed`: compact finished rows to power-of-two buckets (default: when CUDA graphs are used; settable
    so that the bucket bookkeeping is tested on CPU too). `generators`: one random stream per prompt
    (see `process_logits`); None draws from torch's global generator. `on_tokens(rows, tokens)`: called
    after each token step with the rows (of the N = B × G) that were still decoding and the token each
    emitted (an EOS included), so a caller can stream text as it is decoded; it only reads them.
    `before_forward(prompt_of_row)`: called before every model forward (the prefill, each token step) with
    the prompt of each row of that forward's batch, so a caller can route rows to their own weights (the
    inference worker's mixed-adapter batches). It turns CUDA graphs off: what it sets is read in Python at
    each forward, which a captured graph would freeze at its capture."""
    trunk, head = backbone_and_head(model)
    device = batch.input_ids.device
    B, P = batch.input_ids.shape
    G = group_size
    N = B * G
    suppressed = list(suppressed_token_ids or [])
    options = dict(suppressed=suppressed, temperature=temperature, top_p=top_p, do_sample=do_sample)
    eos = torch.tensor(list(eos_token_ids), device=device)
    index = torch.arange(B, device=device).repeat_interleave(G)  # (N,) prompt of each row

    # 1. Prefill: each prompt once.
    positions, next_position = prompt_positions(trunk, batch.input_ids, batch.mm_token_type_ids,
                                                batch.image_grid_thw, batch.attention_mask)
    attn = getattr(trunk.config, "_attn_implementation", "sdpa")
    dtype = None if attn == "sdpa" else next(trunk.parameters()).dtype
    recorder = StaticKV.recorder()
    if before_forward is not None:
        before_forward(torch.arange(B, device=device))
    hidden = trunk(input_ids=batch.input_ids, attention_mask=group_mask(batch.attention_mask, 0, 0, dtype),
                   position_ids=positions, mm_token_type_ids=batch.mm_token_type_ids,
                   image_grid_thw=batch.image_grid_thw, use_cache=False, **cache_argument(trunk, recorder),
                   **images.for_rows(list(range(B)))).last_hidden_state  # (B, P, H)
    first_logits = head(hidden[:, -1]).float()[index]  # (N, V): the G rows of a prompt share it
    del hidden

    # 2. The static cache, fanned out to N rows, with room for every new token.
    capacity = P + max_new_tokens
    cache = recorder.fan_out(index, capacity)
    del recorder
    mask_value = True if dtype is None else 0.0
    blocked = False if dtype is None else torch.finfo(dtype).min
    mask = torch.full((N, 1, 1, capacity), blocked, dtype=torch.bool if dtype is None else dtype, device=device)
    mask[:, 0, 0, :P] = torch.where(batch.attention_mask.bool()[index], mask_value, blocked)
    live = _Live(rows=torch.arange(N, device=device), positions=next_position[index].view(1, N, 1).expand(3, N, 1),
                 mask=mask)

    # 3. Decode. `alive` marks live slots that have not emitted an EOS (under graphs a bucket may
    # carry finished rows as padding: they compute, and nothing of theirs is kept).
    use_graphs = cuda_graphs and device.type == "cuda" and before_forward is None
    buckets = use_graphs if bucketed is None else bucketed
    out = torch.full((N, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    alive = torch.ones(N, dtype=torch.bool, device=device)
    keyed = dict(generators=generators, prompt_of_row=index) if generators is not None else {}
    tokens = process_logits(first_logits, **options, **keyed, alive=alive)  # (n,)
    step: _Step | None = None
    steps = 0
    for t in range(max_new_tokens):
        out[live.rows[alive], t] = tokens[alive]
        if on_tokens is not None:
            on_tokens(live.rows[alive], tokens[alive])
        steps = t + 1
        alive &= ~torch.isin(tokens, eos)
        n_alive = int(alive.sum())
        if t == max_new_tokens - 1 or n_alive == 0:
            break
        size = _bucket(n_alive, live.rows.numel(), buckets)
        if size < live.rows.numel():  # compact: keep the live rows (and, for a bucket, some finished ones)
            keep = torch.cat([alive.nonzero().squeeze(1), (~alive).nonzero().squeeze(1)])[:size]
            live = _Live(live.rows[keep], live.positions[:, keep], live.mask[keep])
            cache.select(keep)
            tokens, alive = tokens[keep], alive[keep]
            step = None
        column = P + t
        cache.write.fill_(column)
        live.mask[:, 0, 0, column] = mask_value
        if step is None:
            step = _make_step(trunk, head, cache, live, use_graphs)
            use_graphs = step.graph is not None
        if generators is not None:
            keyed["prompt_of_row"] = index[live.rows]
        if before_forward is not None:
            before_forward(index[live.rows])
        tokens = process_logits(step(tokens, live.positions + t, live.mask, column), **options, **keyed, alive=alive)

    completion_ids = out[:, :max(steps, 1)]
    cmask = completion_mask(completion_ids, eos_token_ids)
    texts = decode_completions(tokenizer, completion_ids, cmask, eos_token_ids)
    return Rollouts(batch.input_ids[index], batch.attention_mask[index], batch.mm_token_type_ids[index],
                    batch.image_grid_thw[index], index, completion_ids, cmask, texts)


def sample_with(engine_name: str, model, batch: PromptBatch, images: ImageInputs, *, cuda_graphs: bool = True,
                **options) -> Rollouts:
    """Sample with the named engine: "static" (this module) or "generate" (HF `generate`, the fallback for
    a model family this engine has not been checked on). `options` as for `sample`."""
    if engine_name == "generate":  # draws from torch's global generator: per-prompt streams need "static"
        options.pop("generators", None)
        return generate_rollouts(model, batch, images, **options)
    if engine_name != "static":
        raise ValueError(f"unknown rollout engine {engine_name!r}; expected 'static' or 'generate'")
    return sample(model, batch, images, cuda_graphs=cuda_graphs, **options)


def _make_step(trunk, head, cache: StaticKV, live: _Live, use_graphs: bool) -> _Step:
    if not use_graphs:
        return _Step(trunk, head, cache, live, False)
    try:
        return _Step(trunk, head, cache, live, True)
    except Exception as exc:  # noqa: BLE001 — any capture failure: the eager loop gives the same numbers
        warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); decoding eagerly", RuntimeWarning,
                      stacklevel=3)
        return _Step(trunk, head, cache, live, False)
