"""Helpers for the SDK tests: tiny valid datasets (PNG data URLs in Visual-RFT JSONL), and a key, an SDK
client and the CLI (``vrft.cli.main`` in this process) against the shared live server."""

from __future__ import annotations

import base64
import io
import json

import pytest

import vrft

CLS_GRADER = {"type": "visual_rft", "name": "visual_rft", "task": "classification"}
TINY_MODEL = "vrft/tiny-qwen2-vl"
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def png_data_url(rgb=(200, 0, 0), size=(16, 16)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def visual_rft_jsonl(rows: int = 4) -> bytes:
    names = list(COLOURS)
    lines = []
    for i in range(rows):
        name = names[i % len(names)]
        lines.append(json.dumps({
            "image": png_data_url(COLOURS[name]),
            "problem": "What colour is this image? Output the thinking process in <think> </think> and final "
                       "answer in <answer> </answer> tags.",
            "solution": f"<answer>{name}</answer>",
        }))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def dataset_bytes() -> bytes:
    return visual_rft_jsonl()


@pytest.fixture
def dataset_path(tmp_path, dataset_bytes):
    path = tmp_path / "colours.jsonl"
    path.write_bytes(dataset_bytes)
    return path


@pytest.fixture(scope="module")
def live_key(live_server) -> str:
    return live_server.create_key()


@pytest.fixture(scope="module")
def live(live_server, live_key) -> vrft.Client:
    client = vrft.Client(api_key=live_key, base_url=live_server.base_url + "/v1")
    yield client
    client.close()


class Ran:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(live_server, live_key, capsys):
    """The CLI in this process — same parser, same client, same live server, no interpreter start-up."""
    from vrft.cli import main

    def run(*args, key=None):
        capsys.readouterr()
        try:
            code = main(["--api-key", key or live_key, "--base-url", live_server.base_url, *args])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run
