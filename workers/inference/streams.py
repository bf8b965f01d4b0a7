"""Streamed answers: each completion's text handed out while it is decoded, not after.

The decode loop reports every token step (`engine.sample`'s `on_tokens`, `generate`'s streamer); a
`ChoiceStream` per streamed completion turns its tokens into text deltas:

- Incremental detokenising (as vLLM does): only the tokens since the last emitted text are decoded,
  and text ending in U+FFFD (a byte-level token that splits a UTF-8 character) waits for the rest.
- Stop strings: the answer is cut at the first one (batcher.py `_finish`), so a delta never reaches
  past a stop string found so far, and the last `len(longest stop) - 1` characters wait until the
  next token shows whether a stop string begins there.
- `finish(text)` with the finished answer's text (the authoritative one, as a non-streamed request
  gets it) sends what is still held back, so the deltas concatenate to exactly that text.

`emit(text, tokens)` runs on the decode thread: it must only hand the delta on (a queue), not wait.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog
import torch

log = structlog.get_logger("vrft.inference")

Emit = Callable[[str, int], None]  # (delta text, tokens decoded so far for this completion)


class ChoiceStream:
    def __init__(self, tokenizer, eos_token_ids: Sequence[int], stop: Sequence[str], emit: Emit):
        self.tokenizer = tokenizer
        self.eos = set(int(t) for t in eos_token_ids)
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.emit = emit
        self.ids: list[int] = []
        self.tokens = 0  # every token decoded for this completion, its EOS included (usage counts it)
        self.text = ""  # decoded so far
        self.sent = 0  # characters of `text` already emitted
        self.ended = False
        self._prefix = 0  # ids[_prefix:_read] are the tokens behind the last decoded text (context for the next)
        self._read = 0

    def push(self, token: int) -> None:
        if self.ended:
            return
        self.tokens += 1
        if token in self.eos:
            self.ended = True
            return
        self.ids.append(token)
        before = self._decode(self.ids[self._prefix:self._read])
        now = self._decode(self.ids[self._prefix:])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.text += now[len(before):]
            self._prefix, self._read = self._read, len(self.ids)
            self._send(self._safe())

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True) if ids else ""

    def _safe(self) -> int:
        """How much of `text` is sure to be in the answer: up to the first stop string found, and
        short of the tail where a stop string might be starting."""
        cuts = [i for i in (self.text.find(s) for s in self.stop) if i >= 0]
        return min([len(self.text) - self.hold, *cuts])

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            self.emit(self.text[self.sent:upto], self.tokens)
            self.sent = upto

    def finish(self, text: str) -> None:
        """The completion's final text: send the rest of it."""
        self.ended = True
        if not text.startswith(self.text[:self.sent]):  # a tokenizer whose pieces do not decode as the whole
            log.warning("inference.stream_diverged", sent=self.text[:self.sent], final=text)
            return
        self.text = text
        self._send(len(text))


class RowStreams:
    """The streams of one decode call's rows (None for a row nobody streams), fed token steps."""

    def __init__(self, streams: list[ChoiceStream | None]):
        self.streams = streams

    def __bool__(self) -> bool:
        return any(s is not None for s in self.streams)

    def on_tokens(self, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        """`engine.sample`'s hook: the rows still decoding and the token each emitted."""
        for row, token in zip(rows.tolist(), tokens.tolist(), strict=True):
            stream = self.streams[row]
            if stream is not None:
                stream.push(token)


class GenerateStreamer:
    """`generate`'s streamer protocol (`put` per step, `end`) onto `RowStreams`: the first `put` is
    the prompt (2-D, skipped), each later one the (rows,) tokens of one step."""

    def __init__(self, rows: RowStreams):
        self.rows = rows

    def put(self, value: torch.Tensor) -> None:
        if value.dim() != 1:
            return
        self.rows.on_tokens(torch.arange(value.numel()), value)

    def end(self) -> None:
        pass
