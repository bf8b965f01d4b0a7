"""A streamed answer as OpenAI's ``chat.completion.chunk`` server-sent events, sent as it is decoded.

The inference worker hands out each completion's text while it decodes (workers/inference/streams.py):
every delta it sends becomes one content chunk here, so the first words reach the caller after the
first tokens, not after the last. First a role chunk per choice, then the content chunks (choices
interleave when ``n`` > 1, each chunk naming its ``index``), then each choice's ``finish_reason``, the
usage when asked for, and ``[DONE]``. The deltas of a choice concatenate to exactly the text a
non-streamed request gets. A failure after the first chunk (the worker went away) is an ``error``
event, which openai-python raises as an APIError.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.errors import ServiceError


async def sse(events: AsyncIterator[dict[str, Any]], first: dict[str, Any], *, request_id: str, model: str, n: int,
              usage: Callable[[dict[str, Any]], dict[str, Any]] | None) -> AsyncIterator[str]:
    """`first` is the worker's first event (already awaited, so that a refusal was the response's
    status); `usage(answer)` gives the usage chunk's numbers, None when the caller did not ask for it."""
    head = {"id": request_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "system_fingerprint": None}

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    for i in range(n):
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                      "logprobs": None}])
    event = first
    try:
        while event["event"] != "done":
            if event.get("text"):
                yield chunk([{"index": int(event["index"]), "delta": {"content": event["text"]},
                              "finish_reason": None, "logprobs": None}])
            event = await anext(events)
    except ServiceError as exc:
        yield f"data: {json.dumps(exc.body())}\n\n"
        return
    answer = event["answer"]
    for choice in answer["choices"]:
        yield chunk([{"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"],
                      "logprobs": None}])
    if usage is not None:
        yield chunk([], usage=usage(answer))
    yield "data: [DONE]\n\n"
