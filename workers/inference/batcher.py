"""The request loop of an inference worker: a bounded queue in, batched decodes out.

Requests arrive from any transport (the embedded HTTP server, the Redis consumer) as plain dicts,
already checked by the API (app/chat/service.py builds them):

    {"id", "model": {"name", "location"}, "adapter_key": str | None, "min_pixels", "max_pixels",
     "messages": [{"role", "content": str | [{"type": "text", "text"} | {"type": "image", "data": b64}]}],
     "n", "max_tokens", "temperature", "top_p", "stop": [str], "seed": int | None, "deadline": unix s}

One thread decodes (the accelerator does one thing at a time). It takes the oldest waiting request
and every other waiting request that can share its engine call — same base, pixel bounds and
sampling — up to `max_batch`, and decodes them together: the engine prefills each prompt once and
decodes all rows in one loop. Requests for different adapters of that base (or for the base itself)
share the call too, each row through its own adapter (workers/inference/routes.py), up to as many
adapters as the cache holds; the CUDA-graph token step is kept for calls of one adapter (routing is
decided in Python at each forward). A seeded request decodes alone, so that its random stream is
its own and the same seed gives the same answer. A full queue refuses at once (`Busy`); a request
whose deadline passed while it waited is dropped unanswered (the API has already answered 503).

A request submitted with an `events` queue (`stream: true`) also gets its text while it is decoded:
`{"event": "delta", "index", "text", "tokens"}` items, one completion's deltas concatenating to its
final text (workers/inference/streams.py); all of them are queued before its future is resolved.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

import structlog
import torch

from workers.inference.decode import Decoded, Sampling, decode_with_engine, decode_with_generate, uses_engine
from workers.inference.models import AdapterMissing, ModelCache
from workers.inference.prompts import chat_prompt, encode
from workers.inference.streams import ChoiceStream, RowStreams

log = structlog.get_logger("vrft.inference")


class Busy(Exception):
    """The worker's queue is full."""


class RequestError(Exception):
    """A request the model cannot take (too long for its context): the API answers 4xx with this."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.body = {"status": status, "code": code, "message": message, "param": param}


def _sampling(req: dict[str, Any]) -> Sampling:
    return Sampling(n=int(req["n"]), max_new_tokens=int(req["max_tokens"]), temperature=float(req["temperature"]),
                    top_p=float(req["top_p"]))


def batch_key(req: dict[str, Any]) -> tuple:
    """Requests with equal keys can share one engine call (whatever adapters they ask for)."""
    return (req["model"]["name"], req["min_pixels"], req["max_pixels"], _sampling(req))


def _finish(text: str, hit_eos: bool, tokens: int, max_tokens: int, stop: list[str]) -> tuple[str, str]:
    """Cut at the first stop string; OpenAI's finish_reason: "stop" (EOS or a stop string) or "length"."""
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if cuts:
        return text[:min(cuts)], "stop"
    if not hit_eos and tokens >= max_tokens:
        return text, "length"
    return text, "stop"


def answer(req: dict[str, Any], decoded: Decoded) -> dict[str, Any]:
    choices = []
    for i, c in enumerate(decoded.completions):
        text, reason = _finish(c.text, c.hit_eos, c.tokens, int(req["max_tokens"]), list(req.get("stop") or []))
        choices.append({"index": i, "text": text, "finish_reason": reason, "completion_tokens": c.tokens})
    return {"id": req["id"], "prompt_tokens": decoded.prompt_tokens, "choices": choices}


class Pending(Future):
    """A submitted request's answer, and where its streamed deltas go (None: not streamed)."""

    def __init__(self, events: queue.Queue | None = None):
        super().__init__()
        self.events = events


def _streams(loaded, req: dict[str, Any], events: queue.Queue | None) -> list[ChoiceStream] | None:
    """One `ChoiceStream` per completion of a streamed request."""
    if events is None:
        return None

    def emitter(index: int):
        return lambda text, tokens: events.put_nowait({"event": "delta", "index": index, "text": text,
                                                       "tokens": tokens})

    return [ChoiceStream(loaded.processor.tokenizer, loaded.eos_token_ids, list(req.get("stop") or []), emitter(i))
            for i in range(int(req["n"]))]


class Batcher:
    def __init__(self, models: ModelCache, *, queue_size: int, max_batch: int):
        self.models = models
        self.max_batch = max_batch
        self.pending: queue.Queue[tuple[dict, Future]] = queue.Queue(maxsize=queue_size)
        self.held: deque[tuple[dict, Future]] = deque()  # taken from the queue, not batchable with the last call
        self.calls: list[int] = []  # requests per decode call, most recent last (bounded), for tests and logs

    def submit(self, req: dict[str, Any], events: queue.Queue | None = None) -> Pending:
        future = Pending(events)
        try:
            if len(self.held) >= self.pending.maxsize - self.pending.qsize():  # set-aside requests count too
                raise queue.Full
            self.pending.put_nowait((req, future))
        except queue.Full:
            raise Busy(f"inference queue full ({self.pending.maxsize} waiting)") from None
        return future

    def has_room(self) -> bool:
        return self.waiting() < self.pending.maxsize

    def waiting(self) -> int:
        return self.pending.qsize() + len(self.held)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.held:
                first = self.held.popleft()
            else:
                try:
                    first = self.pending.get(timeout=0.2)
                except queue.Empty:
                    continue
            self.step(first)

    def _waiting(self):
        """Requests set aside by earlier calls (oldest first), then the queue's, without blocking."""
        while self.held:
            yield self.held.popleft()
        while True:
            try:
                yield self.pending.get_nowait()
            except queue.Empty:
                return

    def step(self, first: tuple[dict, Future]) -> None:
        """Decode `first` together with every waiting request that can share its call."""
        group, later = [first], []
        key = batch_key(first[0])
        alone = first[0].get("seed") is not None
        adapters = {first[0].get("adapter_key")}
        for item in self._waiting():
            joins = (not alone and item[0].get("seed") is None and batch_key(item[0]) == key
                     and len(group) < self.max_batch)
            with_it = adapters | {item[0].get("adapter_key")}
            if joins and len(with_it - {None}) <= self.models.adapter_cache_size:  # all stay loaded
                adapters = with_it
                group.append(item)
            else:
                later.append(item)
        # Set aside, not re-queued: a put could block on a queue that new arrivals filled meanwhile.
        self.held.extend(later)
        now = time.time()
        live = [(r, f) for r, f in group
                if r.get("deadline", float("inf")) > now and f.set_running_or_notify_cancel()]
        if live:
            self._decode(live)

    def _decode(self, group: list[tuple[dict, Future]]) -> None:
        req0 = group[0][0]
        started = time.perf_counter()
        try:
            results = self._run(group)
        except Exception as exc:  # noqa: BLE001 — every waiting request gets the failure, the loop lives on
            if not isinstance(exc, (RequestError, AdapterMissing)):
                log.exception("inference.decode_failed", model=req0["model"]["name"])
            for _, future in group:
                future.set_exception(exc)
            return
        self.calls = (self.calls + [len(group)])[-100:]
        log.info("inference.decoded", model=req0["model"]["name"], adapter=req0.get("adapter_key"),
                 requests=len(group), seconds=round(time.perf_counter() - started, 3))
        for (_, future), result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _run(self, group: list[tuple[dict, Future]]) -> list[dict[str, Any] | Exception]:
        """One result per request: its answer, or the RequestError that refused it alone."""
        req0 = group[0][0]
        name, location = req0["model"]["name"], req0["model"]["location"]
        loaded = self.models.loaded(name, location)
        processor = self.models.processor(name, location, int(req0["min_pixels"]), int(req0["max_pixels"]))
        context = _context_length(loaded.model)
        prompts, refused = {}, {}
        for i, (r, _) in enumerate(group):
            prompt = chat_prompt(processor, r["messages"])
            try:
                _check_length(processor, r, prompt, context)
                prompts[i] = prompt
            except RequestError as exc:
                refused[i] = exc
        keys = {r.get("adapter_key") for r, _ in group}
        missing = self.models.load_adapters(name, location, sorted(k for k in keys if k is not None))
        for i, (r, _) in enumerate(group):
            if r.get("adapter_key") in missing:  # refused alone, like a too-long prompt
                refused[i] = missing[r["adapter_key"]]
                prompts.pop(i, None)
        sampling = _sampling(req0)
        streams = {i: _streams(loaded, r, getattr(f, "events", None)) for i, (r, f) in enumerate(group)}
        if req0.get("seed") is not None:  # seeded requests decode alone (see step)
            torch.manual_seed(int(req0["seed"]))
        decoded: dict[int, Decoded] = {}
        on_engine = [i for i, p in prompts.items() if uses_engine(p)]
        if on_engine:
            rows = RowStreams([s for i in on_engine for s in (streams[i] or [None] * sampling.n)])
            with self.models.routed(name, location, [group[i][0].get("adapter_key") for i in on_engine]) as (
                    net, routes):
                for i, d in zip(on_engine, decode_with_engine(net, loaded, processor, [prompts[i] for i in on_engine],
                                                              sampling, rows or None, routes), strict=True):
                    decoded[i] = d
        for i, p in prompts.items():
            if i not in decoded:  # no image or several: HF generate, one prompt (and its adapter) at a time
                own = streams[i]
                with self.models.network(name, location, group[i][0].get("adapter_key")) as net:
                    decoded[i] = decode_with_generate(net, loaded, processor, p, sampling,
                                                      RowStreams(list(own)) if own else None)
        results: list[dict[str, Any] | Exception] = []
        for i, (r, _) in enumerate(group):
            if i not in decoded:
                results.append(refused[i])
                continue
            result = answer(r, decoded[i])
            for stream, choice in zip(streams[i] or [], result["choices"] if streams[i] else [], strict=True):
                stream.finish(choice["text"])  # what was held back (a possible stop string's start)
            results.append(result)
        return results


def _context_length(model) -> int:
    config = getattr(model.config, "text_config", None) or model.config
    return int(getattr(config, "max_position_embeddings", 32_768))


def _check_length(processor, req: dict[str, Any], prompt, context: int) -> None:
    """Prompt + max_tokens must fit the model's context, the prompt counted as the model sees it (each
    image's placeholder expanded to its visual tokens)."""
    tokens = int(encode(processor, [prompt], torch.device("cpu"))["input_ids"].shape[1])
    if tokens + int(req["max_tokens"]) > context:
        raise RequestError(400, "context_length_exceeded",
                           f"This model's context is {context} tokens; the messages take {tokens} and "
                           f"max_tokens asks for {req['max_tokens']} more. Shorten the messages or lower max_tokens.",
                           "messages")
