"""Synthetic vision datasets drawn with Pillow, so the demo needs no downloads.

- ``shapes_detection``: circles, squares and triangles on a light background; one query per
  (image, category) with the paper's detection prompt and 0–1000 boxes as the paper's `solution`.
- ``colours``: solid red/green/blue images; the reference field ``label`` names the colour.
- ``colour_answers``: the same images as supervised chat rows answered with a short per-colour code
  (``answer`` also a reference field, for an exact-match grader); ``questions=True`` leaves the answer
  out (reinforcement rows asking the same).
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from vrft.datasets import detection_problem, detection_solution, supervised_record, visual_rft_record

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (210, 40, 40), "green": (40, 170, 70), "blue": (50, 70, 210)}
COLOUR_QUESTION = "What colour is this image? Answer with one word."


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x1, y1, x2, y2 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x1 + x2) // 2, y1), (x2, y2), (x1, y2)], fill=fill)


def shapes_detection(n_images: int, *, size: int = 112, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n_images):
        img = Image.new("RGB", (size, size), (235, 235, 228))
        draw = ImageDraw.Draw(img)
        placed: dict[str, list[list[int]]] = {s: [] for s in SHAPES}
        for _ in range(rng.randint(1, 3)):
            shape = rng.choice(SHAPES)
            side = rng.randint(size // 5, size // 3)
            x1, y1 = rng.randint(0, size - side), rng.randint(0, size - side)
            box = (x1, y1, x1 + side, y1 + side)
            _draw(draw, shape, box, tuple(rng.randint(30, 160) for _ in range(3)))
            placed[shape].append([round(v / size * 1000) for v in box])
        for shape in SHAPES:
            solution = detection_solution(placed[shape]) if placed[shape] else "<answer>No Objects</answer>"
            rows.append(visual_rft_record(img, detection_problem(shape), solution))
    return rows


def colours(n: int, *, size: int = 32) -> list[dict]:
    names = list(COLOURS)
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        rows.append(visual_rft_record(Image.new("RGB", (size, size), COLOURS[name]), COLOUR_QUESTION,
                                      f"<answer>{name}</answer>", label=name))
    return rows


COLOUR_CODES = {"red": "R1", "green": "G22", "blue": "B333"}  # distinct lengths: a constant answer cannot score
CODE_QUESTION = "Colour code?"


def colour_answers(n: int, *, size: int = 32, questions: bool = False) -> list[dict]:
    names = list(COLOURS)
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        image, code = Image.new("RGB", (size, size), COLOURS[name]), COLOUR_CODES[name]
        row = supervised_record(image, CODE_QUESTION, code, answer=code)
        if questions:
            row["messages"].pop()  # the same turn, left for the model to answer
        rows.append(row)
    return rows


EXACT_CODE_GRADER = {"type": "string_check", "name": "exact", "operation": "eq",
                     "input": "{{sample.output_text}}", "reference": "{{item.answer}}"}


# A reward a random tiny model can sometimes earn, so the demo can show GRPO learning on a CPU in
# seconds: the answer's first character names a colour by its code point mod 3 (a real checkpoint
# would be graded with `label_match` on the word itself). Runs in vrft's sandboxed python grader.
COLOUR_CODE_GRADER = {
    "type": "python",
    "name": "colour_code",
    "source": (
        "def grade(sample, item):\n"
        "    text = sample['output_text']\n"
        "    if not text or not text[0].isascii():\n"
        "        return 0.0\n"
        "    return 1.0 if ord(text[0]) % 3 == ['red', 'green', 'blue'].index(item['label']) else 0.0\n"
    ),
}
