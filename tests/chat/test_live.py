"""openai-python's `chat.completions.create` against a real embedded `vrft-server serve` (SQLite, local
objects, its job worker and its inference child), on the built-in tiny Qwen2-VL: the base model, the
`ft:` model and a checkpoint of a job trained here, and the errors a caller can cause."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import tarfile
import threading

import httpx
import openai
import pytest

from demo.synthetic import COLOUR_CODE_GRADER, COLOUR_QUESTION, COLOURS, colours
from tests.factories import data_url, jsonl, png_bytes, upload
from tests.services import free_port, wait_healthy
from tests.workers.conftest import wait_status

MODEL = "vrft/tiny-qwen2-vl"
MAX_TOKENS = 8  # the job's max_completion_tokens: evaluation decodes this many


def _env(tmp) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRFT_")}
    env.update(VRFT_DATA_DIR=str(tmp / "data"), VRFT_POLL_INTERVAL_MS="300",
               VRFT_MODEL_CACHE=str(tmp.parent / "vrft-test-models-chat"), VRFT_INFERENCE_TIMEOUT_S="60",
               VRFT_PYTHON_GRADER_ENABLED="true")  # the demo's colour grader, which a random model can earn
    return env


def _key(env: dict, project: str) -> str:
    return subprocess.run([sys.executable, "-m", "app.cli", "create-key", "--project", project], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chat-live")
    env, port = _env(tmp), free_port()
    log = tmp / "server.log"
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    wait_healthy(base_url, proc, log)
    yield {"url": base_url, "env": env, "log": log, "key": _key(env, "chat"), "tmp": tmp}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def oai(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=server["key"], max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def http(server) -> httpx.Client:
    return httpx.Client(base_url=server["url"], headers={"Authorization": f"Bearer {server['key']}"}, timeout=120)


@pytest.fixture(scope="module")
def tuned_job(http, server) -> dict:
    """The demo's colour job, shortened: a reward the random tiny model earns by chance, so its groups
    have spread and a high learning rate moves the adapter well away from zero in a few steps."""
    train = upload(http, jsonl(colours(6))).json()["id"]
    val = upload(http, jsonl(colours(3)), filename="val.jsonl").json()["id"]
    body = {"model": MODEL, "training_file": train, "validation_file": val, "seed": 0, "suffix": "chat",
            "method": {"type": "reinforcement", "reinforcement": {"grader": COLOUR_CODE_GRADER, "hyperparameters": {
                "max_steps": 6, "batch_size": 3, "group_size": 8, "max_completion_tokens": 2, "learning_rate": 5e-3,
                "checkpoint_interval": 2, "lora": {"r": 16, "alpha": 32, "dropout": 0.0}}}}}
    job_id = http.post("/v1/fine_tuning/jobs", json=body).json()["id"]
    job = wait_status(http, job_id, ("succeeded", "failed"))
    assert job["status"] == "succeeded", (job.get("error"), server["log"].read_text()[-3000:])
    return job


def _image(colour: str) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(png_bytes(COLOURS[colour]))}}


def _ask(colour: str, text: str = COLOUR_QUESTION) -> list[dict]:
    return [{"role": "user", "content": [_image(colour), {"type": "text", "text": text}]}]


def _greedy(oai, model: str, messages, max_tokens: int = MAX_TOKENS, **kw):
    return oai.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0, **kw)


def test_base_model_answers_an_image_question(oai):
    r = _greedy(oai, MODEL, _ask("red"))
    assert r.object == "chat.completion" and r.model == MODEL and r.id.startswith("chatcmpl-")
    assert len(r.choices) == 1 and r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    # 32×32 image → 4 visual tokens between the chat template's text tokens (byte-level tokenizer)
    assert r.usage.prompt_tokens > len(COLOUR_QUESTION) and 1 <= r.usage.completion_tokens <= MAX_TOKENS
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert _greedy(oai, MODEL, _ask("red")).choices[0].message.content == r.choices[0].message.content


def test_tuned_model_answers_differ_from_the_base_model(oai, tuned_job):
    name = tuned_job["fine_tuned_model"]
    assert name.startswith("ft:") and name in [m.id for m in oai.models.list().data]
    base = [_greedy(oai, MODEL, _ask(c)).choices[0].message.content for c in COLOURS]
    tuned = [_greedy(oai, name, _ask(c)).choices[0].message.content for c in COLOURS]
    assert base != tuned, (base, tuned)


def test_chat_answer_equals_the_trainers_evaluation_answer(oai, http, tuned_job, server):
    """Greedy parity: same prompt, same adapter → the chat answer is evaluation's answer, row for row."""
    from workers.training.evaluate import evaluate_model
    from workers.training.tiny import resolve_model

    r = http.get(f"/v1/fine_tuning/jobs/{tuned_job['id']}/adapter")
    adapter = server["tmp"] / "parity-adapter"
    tarfile.open(fileobj=io.BytesIO(r.content)).extractall(adapter, filter="data")
    rows = [{"id": c, "prompt": COLOUR_QUESTION, "image": png_bytes(rgb), "item": {"label": c}}
            for c, rgb in COLOURS.items()]
    folder = resolve_model(MODEL, server["env"]["VRFT_MODEL_CACHE"] + "/models")
    result = evaluate_model(str(folder), rows, COLOUR_CODE_GRADER, adapter_dir=adapter, device="cpu",
                            max_new_tokens=MAX_TOKENS, batch_size=1)
    evaluated = [s["output_text"] for s in result["samples"]]
    chat = [_greedy(oai, tuned_job["fine_tuned_model"], _ask(c)).choices[0].message.content for c in COLOURS]
    assert chat == evaluated


def test_checkpoint_model_is_callable(oai, http, tuned_job):
    checkpoints = http.get(f"/v1/fine_tuning/jobs/{tuned_job['id']}/checkpoints").json()["data"]
    name = next(c["fine_tuned_model_checkpoint"] for c in checkpoints if c["step_number"] == 2)
    r = _greedy(oai, name, _ask("green"))
    assert r.model == name and isinstance(r.choices[0].message.content, str)
    with pytest.raises(openai.NotFoundError):
        _greedy(oai, name.replace("ckpt-step-2", "ckpt-step-3"), _ask("green"))


def test_stream_chunks_concatenate_to_the_answer(oai, tuned_job):
    name = tuned_job["fine_tuned_model"]
    whole = _greedy(oai, name, _ask("blue"), max_tokens=24)
    chunks = list(_greedy(oai, name, _ask("blue"), max_tokens=24, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    # The worker's deltas, as they were decoded (that they go out before decoding ends: test_batcher.py).
    # The base model from this prompt writes complete characters often; the tuned one mostly splits them.
    plain = _greedy(oai, MODEL, _ask("red"), max_tokens=40).choices[0].message.content
    deltas = [c.choices[0].delta.content for c in _greedy(oai, MODEL, _ask("red"), max_tokens=40, stream=True)
              if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == plain and len(deltas) >= 3, (deltas, plain, text)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_sse_wire_format_ends_with_done(http):
    body = {"model": MODEL, "messages": _ask("red"), "max_tokens": 4, "temperature": 0, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_another_projects_model_is_404(server, tuned_job):
    other = openai.OpenAI(base_url=server["url"] + "/v1", api_key=_key(server["env"], "someone-else"), max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        _greedy(other, tuned_job["fine_tuned_model"], _ask("red"))
    assert err.value.body["param"] == "model" and err.value.body["code"] == "model_not_found"


def test_broken_image_is_400_naming_the_part(oai):
    broken = "data:image/png;base64," + base64.b64encode(png_bytes()[:40]).decode()  # cut mid-stream
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is it?"},
                                             {"type": "image_url", "image_url": {"url": broken}}]}]
    with pytest.raises(openai.BadRequestError) as err:
        _greedy(oai, MODEL, messages)
    assert err.value.body["param"] == "messages[0].content[1].image_url"
    with pytest.raises(openai.BadRequestError) as err:  # remote images are off unless the operator allows them
        _greedy(oai, MODEL, [{"role": "user", "content": [{"type": "image_url",
                                                           "image_url": {"url": "https://example.com/a.png"}}]}])
    assert err.value.body["param"] == "messages[0].content[0].image_url"
    assert "VRFT_CHAT_FETCH_IMAGE_URLS" in err.value.body["message"]


def test_too_long_and_unknown_fields_are_client_errors(oai, http):
    too_long = [{"role": "user", "content": "x" * 5000}]  # the tiny model's context is 4,096 tokens
    with pytest.raises(openai.BadRequestError) as err:
        _greedy(oai, MODEL, too_long)
    assert err.value.body["code"] == "context_length_exceeded" and err.value.body["param"] == "messages"
    assert "4096" in err.value.body["message"]
    # streamed, the same refusal is the response's status, not an event inside a 200 stream
    r = http.post("/v1/chat/completions", json={"model": MODEL, "messages": too_long, "stream": True})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json"), r.text
    assert r.json()["error"]["code"] == "context_length_exceeded" and r.json()["error"]["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as err:
        _greedy(oai, MODEL, _ask("red"), max_tokens=10**6)
    assert err.value.body["param"] == "max_tokens"
    with pytest.raises(openai.UnprocessableEntityError) as err:
        _greedy(oai, MODEL, _ask("red"), logprobs=True)
    assert err.value.body["param"] == "logprobs"


def test_text_only_multi_turn_and_two_images(oai):
    """Prompts the rollout engine does not take (no image, two images) decode through generate."""
    turns = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "hello"},
             {"role": "assistant", "content": "hi"}, {"role": "user", "content": "what now?"}]
    r = _greedy(oai, MODEL, turns)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens >= 1
    two = [{"role": "user", "content": [_image("red"), _image("blue"), {"type": "text", "text": "which is red?"}]}]
    one = [{"role": "user", "content": [two[0]["content"][0], two[0]["content"][2]]}]
    both = _greedy(oai, MODEL, two)
    one = _greedy(oai, MODEL, one)
    assert both.usage.prompt_tokens > one.usage.prompt_tokens  # the second image's tokens are in the prompt


def test_sampling_n_seed_stop_and_length(oai):
    kw = dict(model=MODEL, messages=_ask("green"), max_tokens=12, temperature=1.0, n=3)
    first = oai.chat.completions.create(seed=7, **kw)
    again = oai.chat.completions.create(seed=7, **kw)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    assert first.usage.completion_tokens >= 3  # counted over the three choices
    greedy = _greedy(oai, MODEL, _ask("green"), max_tokens=12).choices[0]
    text = greedy.message.content
    assert len(text) >= 3, text
    stop = text[1:3]
    cut = _greedy(oai, MODEL, _ask("green"), max_tokens=12, stop=[stop]).choices[0]
    assert cut.message.content == text[:text.find(stop)] and cut.finish_reason == "stop"
    short = _greedy(oai, MODEL, _ask("green"), max_tokens=1)
    assert short.usage.completion_tokens == 1
    # one token: the limit, unless that token was the end of the turn (then nothing is left to show)
    assert short.choices[0].finish_reason == "length" or short.choices[0].message.content == ""


def test_concurrent_requests_are_all_answered(oai):
    """Four requests at once for one model: all answered, each as it would be alone (batching itself:
    tests/chat/test_batcher.py)."""
    alone = _greedy(oai, MODEL, _ask("red"), max_tokens=6).choices[0].message.content
    answers: list[str] = []

    def ask():
        answers.append(_greedy(oai, MODEL, _ask("red"), max_tokens=6).choices[0].message.content)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [alone] * 4
