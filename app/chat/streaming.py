"""A finished answer as OpenAI's stream of ``chat.completion.chunk`` server-sent events.

The inference worker answers whole completions (the rollout engine decodes every row to the end in
one call and has no per-token callback), so a stream is the answer cut into word-sized chunks after
it is complete: the client code of a streamed call works unchanged, and the chunks concatenate to
exactly the non-streamed text, but the first chunk arrives when decoding ends, not after one token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_PIECES = re.compile(r"\s*\S+\s*|\s+", re.DOTALL)


def pieces(text: str) -> list[str]:
    """`text` as chunks (a word with its surrounding spaces) that concatenate to exactly `text`."""
    return _PIECES.findall(text)


def sse(completion: dict[str, Any], *, include_usage: bool) -> Iterator[str]:
    head = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"], "system_fingerprint": None}

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    for choice in completion["choices"]:
        i = choice["index"]
        yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                      "logprobs": None}])
        for piece in pieces(choice["message"]["content"]):
            yield event([{"index": i, "delta": {"content": piece}, "finish_reason": None, "logprobs": None}])
        yield event([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"], "logprobs": None}])
    if include_usage:
        yield event([], usage=completion["usage"])
    yield "data: [DONE]\n\n"
