"""API ↔ inference worker: the Redis path (`python -m workers.inference --redis`, a real process), and the
503 + Retry-After a caller gets when no worker answers, the queue is full or the wait runs out."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

from tests.factories import data_url, png_bytes
from tests.services import free_port
from workers.inference.batcher import Batcher
from workers.inference.models import ModelCache
from workers.inference.server import REQUESTS, http_server

MODEL = "vrft/tiny-qwen2-vl"
BROKER = "redis://127.0.0.1:6379/15"
BODY = {"model": MODEL, "max_tokens": 6, "temperature": 0,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(png_bytes())}},
                                                  {"type": "text", "text": "colour?"}]}]}


@pytest.fixture
def chat_settings(monkeypatch):
    """The API's settings for one test (the app reads them per request through get_settings())."""
    from app.config import get_settings

    settings = get_settings()

    def use(**values):
        for name, value in values.items():
            monkeypatch.setattr(settings, name, value)

    return use


def _assert_503(r) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["type"] == "service_unavailable" and r.json()["error"]["message"]


@pytest.fixture
def redis_worker(tmp_path):
    redis.Redis.from_url(BROKER).flushdb()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    env.update(VRFT_BROKER_URL=BROKER, VRFT_DATA_DIR=str(tmp_path / "data"),
               VRFT_MODEL_CACHE=str(tmp_path.parent / "vrft-test-models-chat-redis"))
    log = tmp_path / "inference.log"
    proc = subprocess.Popen([sys.executable, "-m", "workers.inference", "--redis"], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    yield proc, log
    proc.terminate()
    proc.wait(timeout=30)


def test_a_redis_inference_worker_answers_through_the_broker(api_client, chat_settings, redis_worker):
    proc, log = redis_worker
    chat_settings(broker_url=BROKER, inference_url=None, inference_timeout_s=90)
    r = api_client.post("/v1/chat/completions", json=BODY)
    assert r.status_code == 200, (r.text, log.read_text()[-2000:])
    answer = r.json()
    assert answer["object"] == "chat.completion" and answer["usage"]["completion_tokens"] >= 1
    again = api_client.post("/v1/chat/completions", json=BODY).json()
    assert again["choices"][0]["message"] == answer["choices"][0]["message"]
    # streamed: the worker's deltas come back one reply item each, and add up to the same answer
    r = api_client.post("/v1/chat/completions", json={**BODY, "stream": True,
                                                      "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    lines = [line.removeprefix("data: ") for line in r.text.splitlines() if line]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) \
        == answer["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == answer["usage"]
    assert proc.poll() is None


def test_no_redis_worker_is_503_after_the_bounded_wait_and_a_full_list_at_once(api_client, chat_settings):
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    chat_settings(broker_url=BROKER, inference_url=None, inference_timeout_s=1, inference_queue_size=1)
    started = time.time()
    _assert_503(api_client.post("/v1/chat/completions", json=BODY))  # nobody takes it
    assert time.time() - started < 10
    assert client.llen(REQUESTS) == 1  # still waiting for a worker: the list is now full
    started = time.time()
    r = api_client.post("/v1/chat/completions", json=BODY)
    _assert_503(r)
    assert "busy" in r.json()["error"]["message"] and time.time() - started < 1
    client.flushdb()


def test_unreachable_inference_worker_is_503(api_client, chat_settings):
    chat_settings(inference_url=f"http://127.0.0.1:{free_port()}", inference_timeout_s=5)
    _assert_503(api_client.post("/v1/chat/completions", json=BODY))


def test_busy_http_worker_is_503_for_a_full_queue_and_past_the_wait(api_client, chat_settings, tmp_path):
    """A worker whose decode thread is occupied (not started here): one request waits out its deadline,
    the one beyond the queue's bound is refused at once."""
    cache = ModelCache(cache_dir=tmp_path, adapter_cache_size=1, fetch_adapter=None, device="cpu")
    batcher = Batcher(cache, queue_size=1, max_batch=4)
    server = http_server(batcher, socket.create_server(("127.0.0.1", 0)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        chat_settings(inference_url=f"http://127.0.0.1:{server.server_address[1]}", inference_timeout_s=2)
        results = {}

        def first():
            results["first"] = api_client.post("/v1/chat/completions", json=BODY)

        waiting = threading.Thread(target=first)
        waiting.start()
        deadline = time.time() + 5
        while batcher.waiting() == 0 and time.time() < deadline:
            time.sleep(0.05)
        full = api_client.post("/v1/chat/completions", json=BODY)
        _assert_503(full)
        assert "queue full" in full.json()["error"]["message"]
        waiting.join(timeout=30)
        _assert_503(results["first"])
        assert "in time" in results["first"].json()["error"]["message"]
    finally:
        server.shutdown()
        server.server_close()


def test_no_inference_worker_configured_is_503(api_client, chat_settings):
    chat_settings(inference_url=None, broker_url=None)
    r = api_client.post("/v1/chat/completions", json=BODY)
    _assert_503(r)
    assert "vrft-worker --inference" in r.json()["error"]["message"]


def test_other_projects_models_and_unknown_models_are_404_before_any_worker(api_client, chat_settings):
    chat_settings(inference_url=None, broker_url=None)
    for model in ("no-such-model", "ft:vrft/tiny-qwen2-vl:proj-x::ftjob-000000000000000000000000",
                  "ft:vrft/tiny-qwen2-vl:proj-x::ftjob-000000000000000000000000:ckpt-step-2"):
        r = api_client.post("/v1/chat/completions", json={**BODY, "model": model})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model", r.text


def test_request_shape_errors_name_their_field(api_client, chat_settings):
    chat_settings(inference_url=None, broker_url=None)
    cases = [({"messages": []}, 422, "messages"),
             ({"messages": [{"role": "tool", "content": "x"}]}, 422, "messages.0.role"),
             ({"n": 0}, 422, "n"), ({"temperature": 3}, 422, "temperature"),
             ({"max_tokens": 5, "max_completion_tokens": 6}, 400, "max_completion_tokens"),
             ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
             ({"stream_options": {"include_usage": True}}, 400, "stream_options"),
             ({"messages": [{"role": "assistant", "content": [
                 {"type": "image_url", "image_url": {"url": BODY["messages"][0]["content"][0]["image_url"]["url"]}}]}]},
              400, "messages[0].content[0].image_url"),
             ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
                 "url": "data:image/png;base64," + base64.b64encode(b"not an image").decode()}}]}]},
              400, "messages[0].content[0].image_url"),
             ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
              400, "messages[1].role")]
    for change, status, param in cases:
        r = api_client.post("/v1/chat/completions", json={**BODY, **change})
        assert r.status_code == status and r.json()["error"]["param"] == param, (change, r.text)
