"""The inference worker's request loop and model cache, in process, on the real tiny Qwen2-VL:
batching, queue bounds, deadlines, seeds, the adapter LRU and the base model behind it."""

from __future__ import annotations

import base64
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.factories import png_bytes
from workers.inference.batcher import Batcher, Busy, RequestError, batch_key
from workers.inference.models import ModelCache, adapter_name

MODEL = {"name": "vrft/tiny-qwen2-vl", "location": "builtin:qwen2-vl"}


def _request(colour=(200, 0, 0), **over) -> dict:
    image = base64.b64encode(png_bytes(colour)).decode()
    req = {"id": f"r-{time.time_ns()}", "model": MODEL, "adapter_key": None, "min_pixels": 3136,
           "max_pixels": 401408, "messages": [{"role": "user", "content": [{"type": "image", "data": image},
                                                                           {"type": "text", "text": "colour?"}]}],
           "n": 1, "max_tokens": 6, "temperature": 0.0, "top_p": 1.0, "stop": [], "seed": None,
           "deadline": time.time() + 60}
    req.update(over)
    return req


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("inference-cache")


@pytest.fixture(scope="module")
def adapters(cache_dir) -> dict[str, Path]:
    """Two saved LoRA adapters of the tiny model with random, far-from-zero B matrices ("storage")."""
    from workers.training.lora import attach_lora
    from workers.training.model import load_model
    from workers.training.tiny import resolve_model

    folders = {}
    for i, key in enumerate(("proj/a/adapter.tar", "proj/b/adapter.tar")):
        net = attach_lora(load_model(resolve_model(MODEL["name"], cache_dir / "models"), device="cpu").model, seed=i)
        gen = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        folders[key] = cache_dir / f"stored-{i}"
        net.save_pretrained(str(folders[key]))
    return folders


def _cache(cache_dir, adapters, size=8) -> ModelCache:
    def fetch(key: str, dest: Path) -> None:  # what download_folder does, from a local "bucket"
        if key not in adapters:
            raise FileNotFoundError(key)
        shutil.copytree(adapters[key], dest)

    return ModelCache(cache_dir=cache_dir, adapter_cache_size=size, fetch_adapter=fetch, device="cpu")


def _run_waiting(batcher: Batcher) -> None:
    """One decode call for the oldest waiting request (and whatever it batches with)."""
    batcher.step(batcher.held.popleft() if batcher.held else batcher.pending.get_nowait())


def _answer(batcher: Batcher, req: dict) -> dict:
    future = batcher.submit(req)
    _run_waiting(batcher)
    return future.result(timeout=60)


def test_concurrent_requests_for_one_model_share_one_engine_call(cache_dir, adapters):
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    alone = [_answer(batcher, _request(c))["choices"][0]["text"] for c in colours]
    assert batcher.calls == [1, 1, 1]
    futures = [batcher.submit(_request(c)) for c in colours]  # all waiting when the loop looks
    _run_waiting(batcher)
    assert batcher.calls[-1] == 3 and all(f.done() for f in futures)
    assert [f.result()["choices"][0]["text"] for f in futures] == alone  # batched = alone, greedy


def test_requests_that_cannot_share_a_call_wait_for_the_next_one(cache_dir, adapters):
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    a, b, c = batcher.submit(_request()), batcher.submit(_request(max_tokens=3)), batcher.submit(_request())
    _run_waiting(batcher)
    assert a.done() and c.done() and not b.done() and batcher.calls[-1] == 2
    _run_waiting(batcher)
    assert b.done() and b.result()["choices"][0]["completion_tokens"] <= 3


def test_full_queue_refuses_and_an_expired_request_is_dropped(cache_dir, adapters):
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=2, max_batch=8)
    late = batcher.submit(_request(deadline=time.time() - 1))
    batcher.submit(_request())
    with pytest.raises(Busy):
        batcher.submit(_request())
    calls = len(batcher.calls)
    _run_waiting(batcher)
    assert not late.done()  # never decoded: the API answered 503 at the deadline
    assert batcher.calls[calls:] == [1]


def test_seeded_requests_decode_alone_and_repeat(cache_dir, adapters):
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    sampled = dict(temperature=1.0, n=3, max_tokens=8, seed=11)
    first = [batcher.submit(_request(**sampled)), batcher.submit(_request(**sampled))]
    _run_waiting(batcher)
    assert first[0].done() and not first[1].done()  # a seeded request's random stream is its own
    _run_waiting(batcher)
    texts = [[c["text"] for c in f.result()["choices"]] for f in first]
    assert texts[0] == texts[1] and len(texts[0]) == 3


def test_adapters_are_fetched_once_and_evicted_least_recently_used(cache_dir, adapters):
    cache = _cache(cache_dir, adapters, size=1)
    batcher = Batcher(cache, queue_size=8, max_batch=8)
    base = _answer(batcher, _request(max_tokens=8))["choices"][0]["text"]
    a1 = _answer(batcher, _request(max_tokens=8, adapter_key="proj/a/adapter.tar"))["choices"][0]["text"]
    a2 = _answer(batcher, _request(max_tokens=8, adapter_key="proj/a/adapter.tar"))["choices"][0]["text"]
    assert cache.adapter_loads == 1 and a1 == a2  # warm: no second fetch
    b = _answer(batcher, _request(max_tokens=8, adapter_key="proj/b/adapter.tar"))["choices"][0]["text"]
    assert cache.cached_adapters(MODEL["name"]) == [adapter_name("proj/b/adapter.tar")]  # a dropped (size 1)
    assert not (cache_dir / "inference-adapters" / adapter_name("proj/a/adapter.tar")).exists()
    assert len({base, a1, b}) == 3, (base, a1, b)  # each adapter changes the answer
    assert _answer(batcher, _request(max_tokens=8))["choices"][0]["text"] == base  # adapters off = the base
    assert _answer(batcher, _request(max_tokens=8, adapter_key="proj/a/adapter.tar"))["choices"][0]["text"] == a1
    assert cache.adapter_loads == 3  # a came back from storage


A, B = "proj/a/adapter.tar", "proj/b/adapter.tar"
TEXT_ONLY = [{"role": "user", "content": "colour?"}]  # no image: decoded by generate, not the engine


def test_requests_for_different_adapters_share_one_engine_call(cache_dir, adapters):
    """Base, adapter a and adapter b requests decode in one call, each row through its own adapter,
    with the answers each gets alone (greedy); a text-only request beside them keeps its adapter too."""
    cache = _cache(cache_dir, adapters)
    batcher = Batcher(cache, queue_size=16, max_batch=16)
    asks = [_request((200, 0, 0), adapter_key=A, max_tokens=8), _request((0, 200, 0), max_tokens=8),
            _request((0, 0, 200), adapter_key=B, max_tokens=8), _request((200, 0, 0), adapter_key=B, max_tokens=8),
            _request((200, 0, 0), max_tokens=8), _request(adapter_key=A, max_tokens=8, messages=TEXT_ONLY)]
    alone = [_answer(batcher, dict(r))["choices"][0]["text"] for r in asks]
    assert len({alone[0], alone[3], alone[4]}) == 3, alone  # same image: a, b and the base answer differently
    loads = cache.adapter_loads
    futures = [batcher.submit(dict(r, id=f"mixed-{i}")) for i, r in enumerate(asks)]
    _run_waiting(batcher)
    assert batcher.calls[-1] == len(asks) and all(f.done() for f in futures)
    assert [f.result()["choices"][0]["text"] for f in futures] == alone
    assert cache.adapter_loads == loads  # warm: nothing fetched again
    # the hooks are gone after the call: a plain adapter request still answers as before
    assert _answer(batcher, dict(asks[0]))["choices"][0]["text"] == alone[0]


def test_a_missing_adapter_fails_only_its_own_requests(cache_dir, adapters):
    from workers.inference.models import AdapterMissing

    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    base, tuned = _request(max_tokens=8), _request(adapter_key=A, max_tokens=8)
    alone = [_answer(batcher, dict(r))["choices"][0]["text"] for r in (base, tuned)]
    futures = [batcher.submit(dict(base)), batcher.submit(_request(adapter_key="proj/gone/adapter.tar", max_tokens=8)),
               batcher.submit(dict(tuned))]
    _run_waiting(batcher)
    assert batcher.calls[-1] == 3
    with pytest.raises(AdapterMissing):
        futures[1].result()
    assert [futures[0].result()["choices"][0]["text"], futures[2].result()["choices"][0]["text"]] == alone


def test_a_call_holds_no_more_adapters_than_the_cache(cache_dir, adapters):
    """With room for one adapter, a and b cannot both stay loaded for one call: b waits for the next
    (the base needs no room and joins a's)."""
    cache = _cache(cache_dir, adapters, size=1)
    batcher = Batcher(cache, queue_size=8, max_batch=8)
    futures = [batcher.submit(_request(adapter_key=A)), batcher.submit(_request(adapter_key=B)),
               batcher.submit(_request())]
    _run_waiting(batcher)
    assert batcher.calls[-1] == 2 and futures[0].done() and futures[2].done() and not futures[1].done()
    _run_waiting(batcher)
    assert batcher.calls[-1] == 1 and futures[1].result()["choices"]
    assert cache.cached_adapters(MODEL["name"]) == [adapter_name(B)]


def test_missing_adapter_and_too_long_prompt_are_request_errors(cache_dir, adapters):
    from workers.inference.models import AdapterMissing

    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    missing = batcher.submit(_request(adapter_key="proj/gone/adapter.tar"))
    _run_waiting(batcher)
    with pytest.raises(AdapterMissing):
        missing.result()
    long = _request(messages=[{"role": "user", "content": "x" * 5000}])
    fine = _request()
    assert batch_key(long) == batch_key(fine)
    futures = [batcher.submit(long), batcher.submit(fine)]
    _run_waiting(batcher)
    with pytest.raises(RequestError) as err:  # refused alone; the request beside it is answered
        futures[0].result()
    assert err.value.body["param"] == "messages" and futures[1].result()["choices"]


def test_run_loop_answers_from_another_thread(cache_dir, adapters):
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    stop = threading.Event()
    loop = threading.Thread(target=batcher.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert batcher.submit(_request()).result(timeout=60)["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        stop.set()
        loop.join(timeout=5)


class _Sink:
    """An events queue that also notes, as each delta is queued (on the decode thread), whether the
    request's answer existed yet."""

    def __init__(self):
        self.events: list[dict] = []
        self.answered_at_put: list[bool] = []
        self.future = None

    def put_nowait(self, event: dict) -> None:
        self.events.append(event)
        self.answered_at_put.append(self.future.done())

    def text(self, index: int = 0) -> str:
        return "".join(e["text"] for e in self.events if e["index"] == index)


def _streamed(batcher: Batcher, req: dict) -> tuple[dict, _Sink]:
    sink = _Sink()
    sink.future = batcher.submit(req, sink)
    _run_waiting(batcher)
    return sink.future.result(timeout=60), sink


@pytest.mark.parametrize("prompt", ["one image (engine)", "text only (generate)"])
def test_streamed_text_is_handed_out_while_it_is_decoded(cache_dir, adapters, prompt):
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    over = {} if prompt.startswith("one") else {"messages": [{"role": "user", "content": "tell me a story"}]}
    # the tiny model always runs to max_tokens from this prompt (no EOS early), so there is a lot to stream
    plain = _answer(batcher, _request(max_tokens=40, **over))
    answer, sink = _streamed(batcher, _request(max_tokens=40, **over))
    assert answer["choices"] == plain["choices"]  # streaming changes nothing of the answer
    choice = answer["choices"][0]
    assert sink.text() == choice["text"] and len(sink.events) >= 3, sink.events
    # structural, not timed: the first delta was handed out when few of the tokens were decoded, and
    # every delta before the answer existed
    assert sink.events[0]["tokens"] < choice["completion_tokens"] / 2, (sink.events[0], choice)
    assert [e["tokens"] for e in sink.events] == sorted(e["tokens"] for e in sink.events)
    assert not any(sink.answered_at_put)


def test_streamed_choices_and_stop_strings_match_the_answer(cache_dir, adapters):
    """n completions stream each under its own index, batched beside a plain request; a stop string's
    text never goes out, even when its first characters were decoded a token before the rest."""
    batcher = Batcher(_cache(cache_dir, adapters), queue_size=8, max_batch=8)
    text = _answer(batcher, _request(max_tokens=24))["choices"][0]["text"]
    assert len(text) >= 6, text
    stop = text[3:6]
    sink = _Sink()
    sink.future = batcher.submit(_request(max_tokens=24, stop=[stop]), sink)
    sampled = _Sink()
    sampled.future = batcher.submit(_request(max_tokens=12, temperature=1.0, n=3), sampled)
    beside = batcher.submit(_request(max_tokens=24))
    _run_waiting(batcher)
    _run_waiting(batcher)
    assert batcher.calls[-2:] == [2, 1]  # the plain request shared the stopped one's call
    cut = sink.future.result()["choices"][0]
    assert sink.text() == cut["text"] == text[:text.find(stop)] and cut["finish_reason"] == "stop"
    assert stop not in sink.text()
    assert beside.result()["choices"][0]["text"] == text
    choices = sampled.future.result()["choices"]
    assert [sampled.text(i) for i in range(3)] == [c["text"] for c in choices]
