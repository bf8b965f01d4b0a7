"""The trainer's hooks, implemented with database writes and object-storage uploads.

Metrics and rollouts are buffered and written in batches (one transaction every ``flush_s`` and
before anything that must be durable: a checkpoint, a stop check, the end), which keeps a fast tiny
job from hammering the database. A heartbeat thread renews the job's lease independently of step
length, so a 10-minute step on a big model doesn't look like a dead worker.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from app.db import now, session_scope
from app.graders import drawn_boxes
from app.ids import new_id
from app.jobs import lifecycle
from app.jobs.metrics import SftStepMetrics, StepMetrics, eval_event, finite, sft_step_event, step_event
from workers.artifacts import upload_folder
from workers.training.checkpoint import STATE_FILE, export_dir

log = structlog.get_logger(__name__)

STATE_FILES = (STATE_FILE,)


def _number(value: float | None, digits: int) -> str:
    return "not a number" if value is None else f"{value:.{digits}f}"


def thumbnail(image_bytes: bytes, size: int = 160) -> tuple[str, list[int]]:
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as img:
        full = list(img.size)
        img = img.convert("RGB")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(), full


class JobHooks:
    def __init__(self, *, job_id: str, project_id: str, worker_id: str, lease, store, settings,
                 examples: dict[str, dict],
                 total_steps: int, completions_per_step: int, grader: dict, flush_s: float = 2.0):
        self.job_id, self.project_id, self.worker_id = job_id, project_id, worker_id
        self.lease = lease
        self.store, self.settings = store, settings
        self.examples = examples
        self.total_steps = total_steps
        self.completions_per_step = completions_per_step
        self.grader = grader  # the job's normalised grader: it reads the boxes the dashboard draws
        self.flush_s = flush_s
        self.pending_events: list[dict] = []
        self.pending_rollouts: list[tuple[int, list[dict]]] = []
        self.progress: dict[str, Any] = {}
        self.trained_tokens = 0
        self.last_flush = time.monotonic()
        self.started = time.monotonic()
        self.checkpoint_metrics: dict[int, str] = {}
        self._thumbs: dict[str, tuple[str, list[int]]] = {}
        self._lock = threading.Lock()

    @property
    def lost(self) -> bool:
        return self.lease.lost

    # -- trainer hooks --------------------------------------------------------------------
    def on_step(self, metrics: StepMetrics | SftStepMetrics) -> None:
        if "train_loss" in metrics:  # a supervised step: OpenAI's loss/accuracy names, no reward
            data: dict[str, Any] = dict(sft_step_event(metrics, self.total_steps))  # type: ignore[arg-type]
            self.trained_tokens += int(metrics["trained_tokens"])  # type: ignore[typeddict-item]
            msg = f"Step {data['step']}/{self.total_steps}: loss " + _number(data["train_loss"], 4) \
                + ", token accuracy " + _number(data["train_mean_token_accuracy"], 3)
        else:
            data = dict(step_event(metrics, self.total_steps))  # type: ignore[arg-type]
            self.trained_tokens += round(metrics["completion_length_mean"] * self.completions_per_step)  # type: ignore[typeddict-item]
            msg = f"Step {data['step']}/{self.total_steps}: reward " + _number(data["reward_mean"], 3)
            if data["kl"] is not None:
                msg += f", kl {data['kl']:.4f}"
        step = data["step"]
        elapsed = time.monotonic() - self.started
        per_step = elapsed / max(step - self.progress.get("first_step", step - 1), 1)
        self.progress.setdefault("first_step", step - 1)
        self.progress.update(step=step, latest_reward=data.get("reward_mean"),
                             estimated_finish=now() + per_step * max(self.total_steps - step, 0))
        with self._lock:
            self.pending_events.append({"message": msg, "type": "metrics", "data": data})
        if time.monotonic() - self.last_flush >= self.flush_s or step >= self.total_steps:
            self.flush()

    def on_rollouts(self, step: int, rollouts: list[dict[str, Any]]) -> None:
        shaped = [self._shape_rollout(step, r) for r in rollouts]
        with self._lock:
            self.pending_rollouts.append((step, shaped))

    def on_checkpoint(self, path: Path, step: int, metrics: dict[str, Any]) -> None:
        self.flush()
        if self.lost:  # the job is someone else's now (or cancelled): their checkpoints, not ours
            return
        base = f"{self.project_id}/{self.job_id}/step-{step}"
        upload_folder(self.store, export_dir(path), f"{base}/adapter.tar", exclude=STATE_FILES)
        upload_folder(self.store, path, f"{base}/state.tar")
        # the row is written only once both objects are in storage: a listed checkpoint is usable.
        # ``metrics``: the step's StepMetrics (the final one also carries its evaluation under "eval"),
        # or just {"step"} for a pause before any step of this run
        ckpt_metrics = {k: metrics[k] for k in ("reward_mean", "kl", "loss", "train_loss", "train_mean_token_accuracy")
                        if k in metrics}
        ckpt_metrics["step"] = step
        if metrics.get("eval"):
            ckpt_metrics.update(_valid(eval_event(step, metrics["eval"])))
        with session_scope() as session:
            if not lifecycle.record_checkpoint(
                    session, worker_id=self.worker_id, checkpoint_id=new_id("ftckpt"), job_id=self.job_id,
                    step=step, storage_key=f"{base}/adapter.tar", state_key=f"{base}/state.tar",
                    metrics=finite(ckpt_metrics)):
                self.lease.lost = True
                return
        log.info("checkpoint.saved", step=step, storage_key=f"{base}/adapter.tar")

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        data = eval_event(step, metrics)
        parts = []
        if "valid_loss" in data:
            parts.append("loss " + _number(data["valid_loss"], 4))
        if "valid_reward_mean" in data:
            parts.append("reward " + _number(data["valid_reward_mean"], 3))
        message = f"Validation at step {step}: " + ", ".join(parts)
        if data.get("valid_metric") is not None:
            message += f", {data['valid_metric_name']} {data['valid_metric']:.3f}"
        with self._lock:
            self.pending_events.append({"message": message, "type": "metrics", "data": data})
        self.flush()
        if self.lost:
            return
        with session_scope() as session:
            if not lifecycle.record_eval_metrics(session, self.job_id, self.worker_id, step, _valid(data)):
                self.lease.lost = True

    def should_stop(self) -> str | None:
        self.flush()
        with session_scope() as session:
            reason = lifecycle.stop_reason(session, self.job_id, self.worker_id)
        if reason == "lost":
            self.lease.lost = True
            return "cancel"  # stop without a pause checkpoint; whoever holds the job now carries on
        return reason

    # -- plumbing -------------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            events, self.pending_events = self.pending_events, []
            rollouts, self.pending_rollouts = self.pending_rollouts, []
        progress = {k: v for k, v in self.progress.items() if k != "first_step"}
        with session_scope() as session:
            if not lifecycle.record_progress(session, self.job_id, self.worker_id, events=events,
                                             rollouts=[(step, finite(rows)) for step, rows in rollouts],
                                             trained_tokens=self.trained_tokens, **progress):
                self.lease.lost = True  # not ours any more: nothing was written
        self.last_flush = time.monotonic()

    def _shape_rollout(self, step: int, r: dict[str, Any]) -> dict[str, Any]:
        example = self.examples.get(r.get("prompt_id", ""))
        image, size = None, None
        if example is not None:
            key = r["prompt_id"]
            if key not in self._thumbs:
                self._thumbs[key] = thumbnail(example["image"])
            image, size = self._thumbs[key]
        item = example["item"] if example else {}
        # the boxes as the grader read them (its parsing, coords and reference_coords, these image
        # sizes), so the picture shows what the reward compared; None where a side was unreadable
        sizes = {k: r[k] for k in ("image_size", "resized_image_size") if r.get(k)}
        samples = [{**sizes, "output_text": text} for text in r["completions"]]
        drawn = drawn_boxes(self.grader, samples, [item] * len(samples)) if samples else None
        boxes = [prediction for prediction, _ in drawn] if drawn else [None] * len(samples)
        gt_boxes = drawn[0][1] if drawn else None
        completions = []
        for i, text in enumerate(r["completions"]):
            completions.append({
                "text": text,
                "reward": r["rewards"][i],
                "rewards": {name: values[i] for name, values in r.get("sub_rewards", {}).items()},
                "advantage": r["advantages"][i],
                "flags": {name: bool(values[i]) for name, values in r.get("flags", {}).items()},
                "boxes": boxes[i],
            })
        return {
            "prompt_id": r.get("prompt_id"), "prompt": r.get("prompt"), "image": image, "image_size": size,
            "reference": {k: v for k, v in item.items() if isinstance(v, (str, int, float, bool)) and k != "problem"},
            "gt_boxes": gt_boxes,
            "completions": completions,
        }


def _valid(data: dict[str, Any]) -> dict[str, Any]:
    """The evaluation figures a checkpoint row keeps."""
    return {k: v for k, v in data.items() if k.startswith("valid_")}
