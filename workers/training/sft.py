"""Supervised fine-tuning (SFT) of a LoRA adapter: next-token loss on the assistant's tokens only.

The paper's baseline beside Visual-RFT (fine-grained classification 56.0 → 51.7 with SFT, 80.3 with
RFT, VISUAL_RFT.md), and the usual first stage of SFT → RFT. It shares everything around the step
with GRPO (loop.py: model loading, LoRA, resume, checkpoints, hooks, evaluation, final adapter).

Data: an example is either a chat — `{"id", "messages": [{"role", "content": str | [{"type": "text",
"text"} | {"type": "image"}], "weight"?: 0 | 1}, …], "images": [bytes | PIL, …], "item"?: {…}}`, the
images in the order of the `{"type": "image"}` parts — or a Visual-RFT row `{"id", "prompt", "image",
"item": {"solution": …}}`, read as one user turn (image + prompt) answered by `solution`.

A step, top to bottom:
1. the step's examples are sorted by length and cut into `grad_accum` micro-batches (length-grouped
   batches, so a micro-batch pads little; we do not pack several examples into one row, because each
   needs its own multimodal RoPE positions and image features — the win is small when images dominate
   the length, and packing.py's mask shows how it would be done);
2. each micro-batch runs through the trunk once; only the hidden states that predict an assistant
   token (every token of every assistant turn, its closing `<|im_end|>` included, unless the turn has
   `weight: 0`) are projected to the vocabulary, `logit_chunk_tokens` at a time under activation
   checkpointing (never the batch's full logits);
3. loss = −Σ log p(target) / (assistant tokens of the whole step), so accumulation changes nothing;
4. clip, AdamW, schedule; metrics under OpenAI's names: `train_loss`, `train_mean_token_accuracy`.
Evaluation: `valid_loss` and `valid_mean_token_accuracy` teacher-forced on the validation rows, plus the
grader's task metric on greedy answers when the job names a grader (so SFT and RFT report one metric).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from workers.training import distributed
from workers.training.config import TrainConfig
from workers.training.data import to_image
from workers.training.hooks import bind
from workers.training.loop import Run, TrainResult, build_run, run_loop
from workers.training.rollout import backbone_and_head


def as_chat(example: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """An SFT example (chat or Visual-RFT row) → (messages with image placeholders, images in order)."""
    if "messages" in example:
        return list(example["messages"]), list(example.get("images") or [])
    target = (example.get("item") or {}).get("solution")
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"example {example.get('id')!r}: a Visual-RFT row needs a non-empty item.solution as target")
    return ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": example["prompt"]}]},
             {"role": "assistant", "content": target}], [example["image"]])


def check_sft_examples(examples: Sequence[dict[str, Any]]) -> None:
    """What training would refuse, named by example: no assistant turn to learn, image count mismatches."""
    for i, ex in enumerate(examples):
        messages, images = as_chat(ex)
        weighted = [m for m in messages if m.get("role") == "assistant" and m.get("weight", 1)]
        if not weighted:
            raise ValueError(f"example {i} ({ex.get('id')!r}) has no assistant turn to learn from")
        placeholders = sum(1 for m in messages if isinstance(m.get("content"), list)
                           for part in m["content"] if part.get("type") == "image")
        if placeholders != len(images):
            raise ValueError(f"example {i} ({ex.get('id')!r}): {placeholders} image parts but {len(images)} images")


@dataclass
class SftBatch:
    input_ids: torch.Tensor  # (B, L) right-padded
    attention_mask: torch.Tensor  # (B, L)
    targets: torch.Tensor  # (B, L) bool: token is an assistant token to learn
    model_inputs: dict[str, Any]  # pixel_values, image_grid_thw, mm_token_type_ids (when there are images)


def _assistant_spans(ids: list[int], start_marker: list[int], end_id: int) -> list[tuple[int, int]]:
    """[start, end) of each assistant turn's tokens: after `<|im_start|>assistant\\n`, through `<|im_end|>`."""
    spans, i, n = [], 0, len(start_marker)
    while i <= len(ids) - n:
        if ids[i:i + n] == start_marker:
            j = i + n
            while j < len(ids) and ids[j] != end_id:
                j += 1
            spans.append((i + n, min(j + 1, len(ids))))
            i = j
        i += 1
    return spans


def encode(processor, examples: Sequence[dict[str, Any]], device: torch.device) -> SftBatch:
    """Chat-template the examples, tokenize (images expanded to their placeholders), mark assistant tokens."""
    tok = processor.tokenizer
    chats = [as_chat(ex) for ex in examples]
    texts = [processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
             for messages, _ in chats]
    images = [to_image(img) for _, imgs in chats for img in imgs]
    side = tok.padding_side
    tok.padding_side = "right"  # positions then start at 0 in every row, text-only rows included
    try:
        enc = processor(images=images or None, text=texts, return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    marker = tok.convert_tokens_to_ids(["<|im_start|>"]) + tok("assistant\n", add_special_tokens=False).input_ids
    end_id = tok.convert_tokens_to_ids("<|im_end|>")
    targets = torch.zeros_like(enc["input_ids"], dtype=torch.bool)
    for row, (ids, (messages, _)) in enumerate(zip(enc["input_ids"].tolist(), chats, strict=True)):
        weights = [m.get("weight", 1) for m in messages if m.get("role") == "assistant"]
        # a truncated sequence may hold fewer assistant spans than messages: the missing ones weigh nothing
        for (start, end), weight in zip(_assistant_spans(ids, marker, end_id), weights, strict=False):
            if weight:
                targets[row, start:end] = True
    inputs: dict[str, Any] = {}
    if images:
        mm = enc.get("mm_token_type_ids")
        if mm is None:
            mm = (enc["input_ids"] == processor.image_token_id).long()
        inputs = {"pixel_values": enc["pixel_values"].to(device), "image_grid_thw": enc["image_grid_thw"].to(device),
                  "mm_token_type_ids": mm.to(device)}
    return SftBatch(enc["input_ids"].to(device), enc["attention_mask"].to(device), targets.to(device), inputs)


def _chunk_loss(hidden: torch.Tensor, targets: torch.Tensor,
                head: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, H), (M,) → (Σ −log p(target), number of argmax hits), fp32 logits of this chunk only."""
    logits = head(hidden).float()
    nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, targets.unsqueeze(1)).squeeze(1)
    return nll.sum(), (logits.argmax(dim=-1) == targets).sum().float()


def token_loss(model, batch: SftBatch, chunk_tokens: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(Σ NLL, Σ correct, target tokens) of a batch's assistant tokens; differentiable when grad is enabled."""
    trunk, head = backbone_and_head(model)
    hidden = trunk(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False,
                   **batch.model_inputs).last_hidden_state  # (B, L, H)
    predicts = batch.targets[:, 1:]  # position i predicts token i + 1
    rows = hidden[:, :-1][predicts]  # (M, H)
    labels = batch.input_ids[:, 1:][predicts]  # (M,)
    nll = hidden.new_zeros((), dtype=torch.float32)
    correct = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.shape[0], chunk_tokens):
        h, t = rows[start:start + chunk_tokens], labels[start:start + chunk_tokens]
        if torch.is_grad_enabled():
            piece, hits = checkpoint(_chunk_loss, h, t, head, use_reentrant=False)
        else:
            piece, hits = _chunk_loss(h, t, head)
        nll, correct = nll + piece, correct + hits.detach()
    return nll, correct, int(labels.numel())


def _length(processor, example: dict[str, Any]) -> int:
    messages, images = as_chat(example)
    return len(processor.apply_chat_template(messages, tokenize=False)) + 1000 * len(images)


def sft_step(run: Run, examples: Sequence[dict[str, Any]], step: int) -> tuple[dict[str, Any], list[dict]]:
    """One SFT optimizer step on `examples` (prompts_per_step of them) → (metrics, nothing to log)."""
    cfg, model = run.config, run.model
    t0 = time.perf_counter()
    first, last = distributed.current().share(len(examples))  # this rank's share (all of them on a world of one)
    ordered = sorted(list(examples)[first:last], key=lambda ex: _length(run.loaded.processor, ex))  # length-grouped
    size = max(1, math.ceil(len(ordered) / cfg.grad_accum))
    micros = [encode(run.loaded.processor, ordered[i:i + size], run.device) for i in range(0, len(ordered), size)]
    # whole-step count (all micro-batches, all ranks): accumulation and data parallelism keep the maths
    (n_tok,) = distributed.all_sum([sum(int(m.targets[:, 1:].sum()) for m in micros)], run.device)
    learning_rate = run.scheduler.get_last_lr()[0]
    model.train()
    run.optimizer.zero_grad(set_to_none=True)
    loss_sum, correct_sum = 0.0, 0.0
    for m in micros:
        nll, correct, _ = token_loss(model, m, cfg.logit_chunk_tokens)
        (nll / max(n_tok, 1)).backward()
        loss_sum += float(nll.detach())
        correct_sum += float(correct)
    distributed.all_sum_grads(run.params)
    grad_norm = torch.nn.utils.clip_grad_norm_(run.params, cfg.max_grad_norm).item()
    loss_sum, correct_sum = distributed.all_sum([loss_sum, correct_sum], run.device)
    run.optimizer.step()
    run.scheduler.step()
    model.eval()
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    elapsed = time.perf_counter() - t0
    return {
        "step": step,
        "train_loss": loss_sum / max(n_tok, 1),
        "train_mean_token_accuracy": correct_sum / max(n_tok, 1),
        "loss": loss_sum / max(n_tok, 1),
        "grad_norm": grad_norm,
        "learning_rate": learning_rate,
        "trained_tokens": int(n_tok),
        "world_size": distributed.current().size,
        "tokens_per_s": n_tok / max(elapsed, 1e-9),
        "step_time_s": elapsed,
    }, []


@torch.no_grad()
def validation_loss(model, processor, data: Sequence[dict[str, Any]], device: torch.device, *, batch_size: int = 8,
                    chunk_tokens: int = 1024) -> dict[str, float]:
    """Teacher-forced `valid_loss` / `valid_mean_token_accuracy` over the assistant tokens of `data`."""
    was_training = model.training
    model.eval()
    nll_sum, correct_sum, tokens = 0.0, 0.0, 0
    for start in range(0, len(data), batch_size):
        nll, correct, n = token_loss(model, encode(processor, data[start:start + batch_size], device), chunk_tokens)
        nll_sum, correct_sum, tokens = nll_sum + float(nll), correct_sum + float(correct), tokens + n
    model.train(was_training)
    return {"valid_loss": nll_sum / max(tokens, 1), "valid_mean_token_accuracy": correct_sum / max(tokens, 1)}


def generation_prompt(example: dict[str, Any]) -> dict[str, Any] | None:
    """The example as a prompt for a graded greedy answer: a chat's turns up to its last assistant message
    (answered as the model learnt to answer them), with its one image; None for a chat with another
    number of images or no user turn before that answer. A Visual-RFT row is its own prompt."""
    if "messages" not in example:
        return example
    messages, images = as_chat(example)
    answers = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    context = messages[:answers[-1]] if answers else messages
    placeholders = sum(1 for m in context if isinstance(m.get("content"), list)
                       for part in m["content"] if part.get("type") == "image")
    if len(images) != 1 or placeholders != 1 or not context or context[-1].get("role") != "user":
        return None
    content = context[-1]["content"]
    text = content if isinstance(content, str) else \
        " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return {"id": example.get("id", ""), "prompt": text, "messages": context, "image": images[0],
            "item": example.get("item") or {}}


def train_sft(config: TrainConfig, train_data: Sequence[dict[str, Any]],
              val_data: Sequence[dict[str, Any]] | None = None, grader: Any = None, hooks: Any = None) -> TrainResult:
    """Supervised LoRA fine-tuning of `config.model` (see the module docstring for the data and the step).

    `grader` (optional): a grader spec or reward callable; when given, evaluations add the grader's
    rewards and task metric on greedy answers to the validation rows that are single-image prompts.
    """
    hooks = bind(hooks)
    distributed.init_from_env(config.device)
    check_sft_examples(train_data)
    if val_data:
        check_sft_examples(val_data)
    run, state = build_run(config)
    limit = config.eval_samples

    def eval_fn(run: Run) -> dict[str, Any]:
        rows = list(val_data or [])[:limit] if limit else list(val_data or [])
        result: dict[str, Any] = validation_loss(run.model, run.loaded.processor, rows, run.device,
                                                 chunk_tokens=config.logit_chunk_tokens)
        prompts = [p for p in (generation_prompt(ex) for ex in rows) if p is not None]
        if grader is not None and prompts:
            from workers.training.evaluate import evaluate

            result.update(evaluate(run.model, run.loaded, prompts, grader, task=config.eval_task,
                                   max_new_tokens=config.max_completion_tokens, rollout_engine=config.rollout_engine))
        return result

    return run_loop(run, state, train_data, val_data, hooks, step_fn=sft_step, eval_fn=eval_fn)
