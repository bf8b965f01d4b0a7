"""A dependency-free progress line on stderr.

On a terminal it redraws one line (``\\r``); elsewhere (logs, CI) it prints a plain line when the
text changes, at most every ``interval`` seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import IO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _bar(fraction: float, width: int = 24) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Progress:
    """``Progress(label, total)``; ``update(done, note="")`` / ``advance(n)``; ``close()``."""

    def __init__(self, label: str, total: float | None = None, *, unit: str = "bytes",
                 stream: IO[str] | None = None, interval: float = 10.0, enabled: bool = True):
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interval = interval
        self.done = 0.0
        self.note = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_text = ""
        self._started = time.monotonic()
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def advance(self, n: float) -> None:
        self.update(self.done + n)

    def update(self, done: float | None = None, *, total: float | None = None, note: str | None = None,
               force: bool = False) -> None:
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self._draw(force=force)

    def _text(self) -> str:
        if self.unit == "bytes":
            amount = human_bytes(self.done)
            if self.total:
                amount += f" / {human_bytes(self.total)}"
            elapsed = max(time.monotonic() - self._started, 1e-6)
            amount += f"  {human_bytes(self.done / elapsed)}/s"
        else:
            amount = f"{self.done:g}" + (f"/{self.total:g} {self.unit}" if self.total else f" {self.unit}")
        bar = _bar(self.done / self.total) + " " if self.total else ""
        note = f"  {self.note}" if self.note else ""
        return f"{self.label} {bar}{amount}{note}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        text = self._text()
        if self._tty:
            if not force and now - self._last_draw < 0.1:
                return
            pad = max(self._width - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            if text == self._last_text or (not force and now - self._last_draw < self.interval):
                return
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_draw = now
        self._last_text = text

    def close(self, final_note: str | None = None) -> None:
        if not self.enabled:
            return
        if final_note is not None:
            self.note = final_note
        self._draw(force=True)
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False
