"""The python grader runs user code in a limited child process; the caller is never harmed."""

import os
import time

import pytest

from app.graders import score
from app.graders.sandbox import Limits, run_python_grader

pytestmark = pytest.mark.slow
FAST = Limits(per_sample_timeout_s=0.5, startup_allowance_s=3.0)


def grader(source: str) -> dict:
    return {"type": "python", "name": "py", "source": source}


def flags_of(result, i=0):
    return {k for k, v in result.flags.items() if v[i]}


def test_batch_in_one_call_reads_sample_and_item():
    source = "def grade(sample, item):\n    return float(sample['output_text'] == item['answer'])\n"
    result = score(grader(source), [{"output_text": "a"}, {"output_text": "b"}], [{"answer": "a"}] * 2)
    assert result.rewards == [1.0, 0.0]
    assert result.sub_rewards == {"py": [1.0, 0.0]}


def test_infinite_loop_times_out_and_later_samples_still_run():
    source = "def grade(sample, item):\n    while sample['output_text'] == 'loop':\n        pass\n    return 0.5\n"
    started = time.monotonic()
    outcomes = run_python_grader(source, [{"output_text": "loop"}, {"output_text": "ok"}], [{}, {}], FAST)
    assert time.monotonic() - started < 3.0
    assert outcomes[0].error == "timeout"
    assert outcomes[1].reward == 0.5


def test_infinite_loop_through_score_is_the_timeout_flag():
    result = score(grader("def grade(s, i):\n    while True:\n        pass\n"), [{"output_text": ""}], [{}])
    assert result.rewards == [0.0]
    assert flags_of(result) == {"timeout"}


def test_loop_in_c_code_is_killed_at_the_wall_limit():
    # sum() over a huge range never returns to the bytecode loop, so only the parent's kill works
    source = "def grade(s, i):\n    return float(sum(range(10**12)))\n"
    started = time.monotonic()
    outcomes = run_python_grader(source, [{}], [{}], Limits(per_sample_timeout_s=0.5, startup_allowance_s=1.0))
    assert time.monotonic() - started < 3.0
    assert outcomes[0].error == "timeout"


def test_memory_hog_is_flagged():
    result = score(grader("def grade(s, i):\n    block = bytearray(4 * 1024**3)\n    return 1.0\n"),
                   [{"output_text": ""}], [{}])
    assert result.rewards == [0.0]
    assert flags_of(result) == {"python_grader_memory_limit", "python_grader_runtime_error"}


@pytest.mark.parametrize(
    "body",
    [
        "import socket\n    socket.socket().connect(('127.0.0.1', 9))",
        "import _socket\n    _socket.socket()",
        "import urllib.request\n    urllib.request.urlopen('http://127.0.0.1:9')",
    ],
)
def test_network_attempts_are_blocked(body):
    result = score(grader(f"def grade(s, i):\n    {body}\n    return 1.0\n"), [{"output_text": ""}], [{}])
    assert result.rewards == [0.0]
    assert "python_grader_blocked_operation" in flags_of(result)


@pytest.mark.parametrize(
    "body",
    [
        "import os\n    os.system('touch {marker}')",
        "import subprocess\n    subprocess.run(['touch', '{marker}'])",
        "import os\n    os.execv('/bin/touch', ['touch', '{marker}'])",
        "import os\n    os.fork()",
        "open('{marker}', 'w').write('x')",
        "import os\n    os.kill(os.getppid(), 9)",
    ],
)
def test_process_and_file_attempts_are_blocked(body, tmp_path):
    marker = tmp_path / "pwned"
    source = f"def grade(s, i):\n    {body.format(marker=marker)}\n    return 1.0\n"
    result = score(grader(source), [{"output_text": ""}], [{}])
    assert result.rewards == [0.0]
    assert "python_grader_blocked_operation" in flags_of(result)
    assert not marker.exists()
    assert os.getpid() > 0  # and we are still here to check


def test_errors_and_bad_returns_are_runtime_flags():
    source = (
        "def grade(s, i):\n"
        "    t = s['output_text']\n"
        "    if t == 'raise': raise ValueError('nope')\n"
        "    if t == 'str': return 'high'\n"
        "    if t == 'nan': return float('nan')\n"
        "    print('noise' * 1000)\n"
        "    return 0.25\n"
    )
    samples = [{"output_text": t} for t in ("raise", "str", "nan", "ok")]
    result = score(grader(source), samples, [{}] * 4)
    assert result.rewards == [0.0, 0.0, 0.0, 0.25]
    assert result.flags["python_grader_runtime_error"] == [True, True, True, False]


def test_module_level_failure_flags_every_sample():
    result = score(grader("raise RuntimeError('boom')\ndef grade(s, i):\n    return 1\n"),
                   [{"output_text": ""}] * 2, [{}] * 2)
    assert result.rewards == [0.0, 0.0]
    assert result.flags["python_grader_runtime_error"] == [True, True]


def test_output_flood_is_capped():
    source = "import os\ndef grade(s, i):\n    os.write(3, b'x' * 10**7)\n    return 1.0\n"
    outcomes = run_python_grader(source, [{}], [{}], FAST)
    assert outcomes[0].reward is None  # whatever the fd, the parent never takes more than its cap


def test_a_caught_violation_still_scores_zero():
    source = (
        "import socket\n"
        "def grade(s, i):\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', 9))\n"
        "    except Exception:\n"
        "        pass\n"
        "    return 1.0\n"
    )
    result = score(grader(source), [{"output_text": ""}], [{}])
    assert result.rewards == [0.0]
    assert "python_grader_blocked_operation" in flags_of(result)
