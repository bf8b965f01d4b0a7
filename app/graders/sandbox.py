"""Run a user's ``grade(sample, item) -> float`` in a separate, limited process.

One child per batch (not per sample): ``python -I -c _CHILD`` reads the job from stdin and streams
one JSON line per sample, so a batch that times out keeps the results it finished. Inside the child,
before any user code runs:

- rlimits: address space (memory), CPU seconds, no core files, no file growth, no new processes;
- stdout/stderr point at /dev/null (user prints cannot corrupt the protocol);
- ``socket.socket`` and friends raise, and an audit hook (PEP 578, cannot be removed once added)
  refuses socket, subprocess, os.system/exec/fork/spawn/kill, ctypes and file-writing events;
- each sample runs under a SIGALRM deadline; the parent also kills the whole process group at the
  batch wall-time limit and stops reading past an output cap.

The parent never raises for anything the user's code does: each sample comes back as a reward or an
error kind (``timeout``, ``memory``, ``blocked``, ``runtime``) that scoring turns into flags.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    per_sample_timeout_s: float = 2.0
    batch_timeout_s: float = 60.0
    startup_allowance_s: float = 5.0  # interpreter start + exec of the user's module
    memory_bytes: int = 512 * 1024 * 1024
    output_bytes_per_sample: int = 4096


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Outcome:
    reward: float | None  # None when the sample failed
    error: str | None = None  # timeout | memory | blocked | runtime
    detail: str | None = None


_CHILD = r'''
import json, os, resource, signal, sys
job = json.loads(sys.stdin.buffer.read())
out = os.fdopen(os.dup(1), "w", buffering=1)
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1); os.dup2(null, 2)
sys.stdout = sys.stderr = open(os.devnull, "w")
mem, cpu = job["memory_bytes"], job["cpu_seconds"]
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

class SandboxViolation(PermissionError):
    pass

# The first refused operation of the current sample; reported even when the user's code (or a
# library such as urllib, which wraps OSError) catches the exception.
_violation = []

def _refuse(*args, **kwargs):
    _violation.append("network access is not allowed in a python grader")
    raise SandboxViolation(_violation[-1])

import socket

class _NoSocket(socket.socket):  # a class, so library subclasses (ssl.SSLSocket) still import
    def __init__(self, *args, **kwargs):
        _refuse()

socket.socket = _NoSocket
for _name in ("socketpair", "create_connection", "create_server", "fromfd",
              "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    setattr(socket, _name, _refuse)

_BLOCKED_PREFIXES = ("socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
                     "os.system", "os.kill", "os.killpg", "os.forkpty", "ctypes.", "os.remove",
                     "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
                     "os.link", "os.truncate", "os.putenv", "os.unsetenv", "shutil.", "pty.",
                     "winreg.", "_posixsubprocess", "resource.setrlimit", "resource.prlimit",
                     "signal.")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

def _audit(event, args):
    if event.startswith(_BLOCKED_PREFIXES):
        _violation.append(f"'{event}' is not allowed in a python grader")
        raise SandboxViolation(_violation[-1])
    if event == "open":
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS):
            _violation.append("writing files is not allowed in a python grader")
            raise SandboxViolation(_violation[-1])

class _Deadline(BaseException):
    pass

def _alarm(signum, frame):
    raise _Deadline()

signal.signal(signal.SIGALRM, _alarm)
sys.addaudithook(_audit)

def _emit(i, **fields):
    out.write(json.dumps({"i": i, **fields}) + "\n")

def _kind(exc):
    if isinstance(exc, _Deadline):
        return "timeout"
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, SandboxViolation):
        return "blocked"
    return "runtime"

def _describe(exc):
    return f"{type(exc).__name__}: {exc}"[:300]

sys.dont_write_bytecode = True
samples, items, per_sample = job["samples"], job["items"], job["per_sample_timeout_s"]
namespace = {"__name__": "__grader__"}
try:
    signal.setitimer(signal.ITIMER_REAL, per_sample)
    exec(compile(job["source"], "<grader>", "exec"), namespace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    grade = namespace["grade"]
except BaseException as exc:
    signal.setitimer(signal.ITIMER_REAL, 0)
    kind, detail = ("blocked", _violation[0]) if _violation else (_kind(exc), _describe(exc))
    for i in range(len(samples)):
        _emit(i, error=kind, detail="loading the grader: " + detail)
    out.flush()
    os._exit(0)

for i, (sample, item) in enumerate(zip(samples, items)):
    _violation.clear()
    try:
        signal.setitimer(signal.ITIMER_REAL, per_sample)
        try:
            value = grade(sample, item)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if _violation:
            _emit(i, error="blocked", detail=_violation[0])
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            _emit(i, error="runtime", detail=f"grade returned {type(value).__name__}, not a number")
        else:
            _emit(i, reward=float(value))
    except BaseException as exc:
        if _violation:
            _emit(i, error="blocked", detail=_violation[0])
        else:
            _emit(i, error=_kind(exc), detail=_describe(exc))
out.flush()
os._exit(0)
'''


def run_python_grader(
    source: str, samples: list[dict[str, Any]], items: list[dict[str, Any]], limits: Limits = DEFAULT_LIMITS
) -> list[Outcome]:
    """Grade every (sample, item) pair in one child process; one Outcome per pair, in order."""
    n = len(samples)
    if n == 0:
        return []
    wall = min(limits.batch_timeout_s, limits.startup_allowance_s + limits.per_sample_timeout_s * n)
    job = {
        "source": source,
        "samples": samples,
        "items": items,
        "per_sample_timeout_s": limits.per_sample_timeout_s,
        "memory_bytes": limits.memory_bytes,
        "cpu_seconds": max(1, math.ceil(wall)),
    }
    try:
        payload = json.dumps(job, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        return [Outcome(None, "runtime", f"sample or item is not JSON: {exc}")] * n
    cap = 1024 + limits.output_bytes_per_sample * n
    results: dict[int, Outcome] = {}
    killed_for = None
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so a kill takes anything it managed to start
    )
    assert proc.stdin is not None and proc.stdout is not None  # both are PIPEs
    deadline = time.monotonic() + wall
    try:
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; every sample is reported missing below
        buffer = b""
        received = 0
        fd = proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                killed_for = "timeout"
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            received += len(chunk)
            if received > cap:
                killed_for = "output"
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                _record(line, n, results)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
        proc.stdout.close()
    if killed_for is None and proc.returncode == -signal.SIGXCPU:
        killed_for = "timeout"
    missing = {
        "timeout": Outcome(None, "timeout", "the grader ran past its time limit"),
        "output": Outcome(None, "runtime", "the grader wrote more output than allowed"),
        None: Outcome(None, "runtime", f"the grader process ended early (exit {proc.returncode})"),
    }[killed_for]
    return [results.get(i, missing) for i in range(n)]


def _record(line: bytes, n: int, results: dict[int, Outcome]) -> None:
    try:
        msg = json.loads(line)
        i = msg["i"]
    except (ValueError, KeyError, TypeError):
        return  # not one of our lines; the sample it should have been is reported missing
    if not isinstance(i, int) or not 0 <= i < n or i in results:
        return
    reward = msg.get("reward")
    if isinstance(reward, (int, float)) and not isinstance(reward, bool) and math.isfinite(reward):
        results[i] = Outcome(float(reward))
    elif "reward" in msg:
        results[i] = Outcome(None, "runtime", "grade returned a non-finite number")
    else:
        error = msg.get("error") if msg.get("error") in ("timeout", "memory", "blocked") else "runtime"
        results[i] = Outcome(None, error, str(msg.get("detail"))[:300])
