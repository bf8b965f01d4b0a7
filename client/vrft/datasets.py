"""Build training files for vrft from Python: Visual-RFT or OpenAI-RFT JSONL, COCO detection
few-shot sets with the paper's prompt, and archives (manifest + image files).

Images may be given as a path, raw bytes, a ``data:`` URL or a PIL image (Pillow is needed only for
PIL images). Nothing here talks to the server; upload the result with ``client.files.upload()``.

    from vrft import datasets
    rows = [{"image": "cat.png", "problem": "What animal is this? ...", "solution": "<answer>cat</answer>"}]
    datasets.write_jsonl("train.jsonl", rows)                       # images inlined as data URLs
    datasets.build_archive("train.zip", rows)                         # images stored as files
    ex = datasets.coco_detection_examples("instances_train2017.json", "train2017/",
                                          categories=["dog", "cat"], shots=2)
"""

from __future__ import annotations

import base64
import copy
import io
import json
import mimetypes
import os
import random
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

__all__ = [
    "DETECTION_PROMPT",
    "CLASSIFICATION_PROMPT",
    "image_to_data_url",
    "visual_rft_record",
    "openai_rft_record",
    "to_openai_record",
    "write_jsonl",
    "coco_box_to_norm1000",
    "detection_solution",
    "detection_problem",
    "coco_detection_examples",
    "build_archive",
    "convert_coco",
]

DETECTION_PROMPT = (
    "Detect all objects belonging to the category '{category}' in the image, and provide the bounding boxes "
    "(between 0 and 1000, integer) and confidence (between 0 and 1, with two decimal places). If no object "
    "belonging to the category '{category}' in the image, return 'No Objects'. Output the thinking process in "
    "<think> </think> and final answer in <answer> </answer> tags. The output answer format should be as "
    "follows: <think> ... </think> <answer>[{{'Position': [x1, y1, x2, y2], 'Confidence': number}}, ...]</answer> "
    "Please strictly follow the format."
)
CLASSIFICATION_PROMPT = (
    "This is an image containing a {kind}. Please identify the species of the {kind} based on the image. "
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags. The output "
    "answer format should be as follows: <think> ... </think> <answer>species name</answer> "
    "Please strictly follow the format."
)

ImageLike = Union[str, "os.PathLike[str]", bytes, Any]  # Any: a PIL.Image.Image

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
]


def _sniff_mime(data: bytes, name: str | None = None) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed = mimetypes.guess_type(name or "")[0]
    return guessed or "application/octet-stream"


def _is_pil(image: Any) -> bool:
    return hasattr(image, "save") and hasattr(image, "size") and hasattr(image, "mode")


def _pil_bytes(image: Any, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    if fmt.upper() == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buf, format=fmt)
    return buf.getvalue()


def image_to_data_url(image: ImageLike, *, format: str = "PNG") -> str:
    """A ``data:image/...;base64,`` URL for a path, bytes, PIL image or (unchanged) data URL.
    ``format`` applies to PIL images only (files keep their own encoding)."""
    if isinstance(image, str) and image.startswith("data:"):
        return image
    if _is_pil(image):
        data, mime = _pil_bytes(image, format), f"image/{format.lower()}"
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        mime = _sniff_mime(data)
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        data = path.read_bytes()
        mime = _sniff_mime(data, path.name)
    else:
        raise TypeError(f"Not an image: {type(image).__name__} (use a path, bytes, a data URL or a PIL image)")
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def visual_rft_record(image: ImageLike, problem: str, solution: str, **extra: Any) -> dict[str, Any]:
    """One Visual-RFT row: ``{"image": <data URL>, "problem", "solution", ...extra}``."""
    return {"image": image_to_data_url(image), "problem": problem, "solution": solution, **extra}


def openai_rft_record(image: ImageLike | None, prompt: str, **reference_fields: Any) -> dict[str, Any]:
    """One OpenAI-RFT row: a user message with the text and the image; ``reference_fields`` become
    top-level keys that graders read as ``{{item.<field>}}``."""
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    if image is not None:
        content.append({"type": "image_url", "image_url": {"url": image_to_data_url(image)}})
    return {"messages": [{"role": "user", "content": content}], **reference_fields}


def supervised_record(image: ImageLike | None, prompt: str, target: str, **reference_fields: Any) -> dict[str, Any]:
    """One OpenAI supervised row: a user message with the image and the text, then the assistant's
    ``target`` answer; ``reference_fields`` stay top-level for a grader scoring evaluations."""
    content: list[dict[str, Any]] = []
    if image is not None:  # image first: the user turn as the trainer builds a Visual-RFT row's
        content.append({"type": "image_url", "image_url": {"url": image_to_data_url(image)}})
    content.append({"type": "text", "text": prompt})
    return {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": target}],
            **reference_fields}


def to_openai_record(record: dict[str, Any]) -> dict[str, Any]:
    """Visual-RFT row → OpenAI-RFT row (``problem`` becomes the prompt; ``solution`` and every other
    field stay as reference fields)."""
    if "messages" in record:
        return record
    rest = {k: v for k, v in record.items() if k not in ("image", "problem")}
    return openai_rft_record(record.get("image"), record["problem"], **rest)


def _normalise(record: dict[str, Any], format: str) -> dict[str, Any]:
    if format == "openai":
        return to_openai_record({**record, "image": image_to_data_url(record["image"])}
                                if "image" in record else record)
    if format != "visual_rft":
        raise ValueError(f"Unknown format {format!r}: use 'visual_rft' or 'openai'.")
    if "messages" in record:
        return record
    missing = [k for k in ("image", "problem", "solution") if k not in record]
    if missing:
        raise ValueError(f"A Visual-RFT record needs {', '.join(missing)}: {sorted(record)}")
    return {**record, "image": image_to_data_url(record["image"])}


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]], *,
                format: str = "visual_rft") -> Path:
    """Write records as JSONL with every image inlined as a data URL. Returns the path.

    ``format="visual_rft"``: rows ``{image, problem, solution, ...}``; ``format="openai"``: the
    same rows turned into OpenAI-RFT ``messages`` with ``solution`` (and extras) as reference fields.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(_normalise(record, format), ensure_ascii=False) + "\n")
    return path


# -- COCO detection → Visual-RFT --------------------------------------------------------------------
def coco_box_to_norm1000(box: Sequence[float], width: float, height: float) -> list[int]:
    """COCO ``[x, y, w, h]`` in pixels → ``[x1, y1, x2, y2]`` integers in 0–1000."""
    x, y, w, h = (float(v) for v in box)
    if width <= 0 or height <= 0:
        raise ValueError("image width and height must be positive")

    def scale(value: float, size: float) -> int:
        return int(min(max(round(value / size * 1000), 0), 1000))

    return [scale(x, width), scale(y, height), scale(x + w, width), scale(y + h, height)]


def detection_solution(boxes: Sequence[Sequence[int]]) -> str:
    """The paper's solution string: ``<answer>[{'Position': [x1, y1, x2, y2], 'Confidence': 1}, ...]</answer>``."""
    items = ", ".join(f"{{'Position': {[int(v) for v in b]}, 'Confidence': 1}}" for b in boxes)
    return f"<answer>[{items}]</answer>"


def detection_problem(category: str) -> str:
    return DETECTION_PROMPT.format(category=category)


def coco_detection_examples(
    annotations: str | os.PathLike[str] | dict[str, Any],
    images_dir: str | os.PathLike[str] | None = None,
    *,
    categories: Sequence[str | int] | None = None,
    shots: int | None = None,
    seed: int | None = 0,
    image_ref: str = "data_url",
    include_crowd: bool = False,
    min_box_area: float = 0.0,
) -> list[dict[str, Any]]:
    """COCO instances → Visual-RFT detection rows, one per (image, category) pair, as in ViRFT_COCO.

    ``categories``: names or ids (default: all); ``shots``: images per category (default: all),
    drawn with ``seed`` (``None`` = the first ones by image id). ``image_ref``: ``"data_url"``
    (inline the image), ``"path"`` (the absolute path; feed the rows to ``build_archive``) or
    ``"relative"`` (the COCO ``file_name``). Each row also carries ``category``, ``image_id`` and
    ``image_size`` ``[width, height]`` (handy as grader reference fields).
    """
    coco = annotations if isinstance(annotations, dict) else json.loads(Path(annotations).read_text("utf-8"))
    cats = {c["id"]: c for c in coco.get("categories", [])}
    by_name = {c["name"]: cid for cid, c in cats.items()}
    if categories is None:
        wanted = sorted(cats)
    else:
        wanted = []
        for c in categories:
            if isinstance(c, int) or (isinstance(c, str) and c.isdigit() and c not in by_name):
                cid = int(c)
                if cid not in cats:
                    raise KeyError(f"No category with id {cid} in the annotations")
            else:
                if c not in by_name:
                    raise KeyError(f"No category named {c!r}; known: {', '.join(sorted(by_name))}")
                cid = by_name[c]
            wanted.append(cid)
    wanted_set = set(wanted)
    images = {img["id"]: img for img in coco.get("images", [])}
    boxes: dict[tuple[int, int], list[list[float]]] = {}
    for ann in coco.get("annotations", []):
        if ann.get("category_id") not in wanted_set:
            continue
        if ann.get("iscrowd") and not include_crowd:
            continue
        bbox = ann.get("bbox") or []
        if len(bbox) != 4 or bbox[2] * bbox[3] < min_box_area or bbox[2] <= 0 or bbox[3] <= 0:
            continue
        boxes.setdefault((ann["category_id"], ann["image_id"]), []).append(bbox)
    rng = random.Random(seed) if seed is not None else None
    rows = []
    for cid in wanted:
        image_ids = sorted(iid for (c, iid) in boxes if c == cid and iid in images)
        if rng is not None:
            rng.shuffle(image_ids)
        if shots is not None:
            image_ids = image_ids[:shots]
        for iid in image_ids:
            img = images[iid]
            width, height = img["width"], img["height"]
            norm = [coco_box_to_norm1000(b, width, height) for b in boxes[(cid, iid)]]
            norm.sort()
            source = Path(images_dir) / img["file_name"] if images_dir is not None else Path(img["file_name"])
            if image_ref == "data_url":
                ref: Any = image_to_data_url(source)
            elif image_ref == "path":
                ref = str(source)
            elif image_ref == "relative":
                ref = img["file_name"]
            else:
                raise ValueError("image_ref must be 'data_url', 'path' or 'relative'")
            name = cats[cid]["name"]
            rows.append({"image": ref, "problem": detection_problem(name), "solution": detection_solution(norm),
                         "category": name, "image_id": iid, "image_size": [width, height]})
    return rows


# -- archives ---------------------------------------------------------------------------------------
def _archive_kind(dest: Path) -> str:
    name = dest.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".tar"):
        return "tar"
    raise ValueError(f"Archive name must end in .zip, .tar, .tar.gz or .tgz: {dest.name}")


class _ArchiveWriter:
    def __init__(self, dest: Path):
        self.kind = _archive_kind(dest)
        if self.kind == "zip":
            self._zip: zipfile.ZipFile | None = zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED)
            self._tar: tarfile.TarFile | None = None
        else:
            self._zip = None
            self._tar = tarfile.open(dest, "w:gz" if self.kind == "tar.gz" else "w")

    def add_file(self, source: Path, arcname: str) -> None:
        if self._zip is not None:
            self._zip.write(source, arcname)  # streamed from disk
        else:
            assert self._tar is not None
            self._tar.add(str(source), arcname=arcname, recursive=False)

    def add_bytes(self, data: bytes, arcname: str) -> None:
        if self._zip is not None:
            self._zip.writestr(arcname, data)
        else:
            assert self._tar is not None
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()


def _unique(name: str, used: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate, n = name, 1
    while candidate in used:
        candidate = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
        n += 1
    used.add(candidate)
    return candidate


def build_archive(dest: str | os.PathLike[str], records: Iterable[dict[str, Any]], *,
                  manifest_name: str = "train.jsonl", images_root: str | os.PathLike[str] | None = None,
                  image_dir: str = "images", format: str = "visual_rft") -> Path:
    """Write a .zip / .tar / .tar.gz holding ``manifest_name`` (JSONL) and the images as files.

    Each record's ``image`` (or, for ``format="openai"``, each ``image_url`` in its messages) may be
    a path (relative ones resolve against ``images_root``), bytes or a PIL image; it is stored under
    ``image_dir/`` and the manifest refers to it by that relative path. Data URLs are left inline.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    root = Path(images_root) if images_root is not None else None
    writer = _ArchiveWriter(dest)
    used: set[str] = set()
    stored: dict[str, str] = {}  # source path → arcname (an image shared by rows is stored once)

    def store(image: Any, hint: str) -> str:
        if isinstance(image, str) and image.startswith("data:"):
            return image
        if _is_pil(image):
            arc = f"{image_dir}/{_unique(hint + '.png', used)}"
            writer.add_bytes(_pil_bytes(image), arc)
            return arc
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
            ext = (mimetypes.guess_extension(_sniff_mime(data)) or ".bin").lstrip(".")
            arc = f"{image_dir}/{_unique(f'{hint}.{ext}', used)}"
            writer.add_bytes(data, arc)
            return arc
        path = Path(image)
        if not path.is_absolute() and root is not None:
            path = root / path
        key = str(path.resolve())
        if key not in stored:
            if not path.is_file():
                raise FileNotFoundError(f"Image not found: {path}")
            stored[key] = f"{image_dir}/{_unique(path.name, used)}"
            writer.add_file(path, stored[key])
        return stored[key]

    lines: list[str] = []
    try:
        for i, record in enumerate(records):
            row = copy.deepcopy(record) if "messages" in record else dict(record)
            hint = f"{i:06d}"
            if "messages" in row:
                for message in row["messages"]:
                    parts = message.get("content")
                    for part in parts if isinstance(parts, list) else []:
                        if isinstance(part, dict) and part.get("type") == "image_url":
                            ref = part["image_url"]
                            part["image_url"] = {"url": store(ref["url"] if isinstance(ref, dict) else ref, hint)}
            elif format == "openai":
                image = row.get("image")
                rest = {k: v for k, v in row.items() if k not in ("image", "problem")}
                row = openai_rft_record(None, row["problem"], **rest)
                if image is not None:
                    part = {"type": "image_url", "image_url": {"url": store(image, hint)}}
                    row["messages"][0]["content"].append(part)
            else:
                if "image" not in row:
                    raise ValueError(f"Record {i} has no 'image'")
                row["image"] = store(row["image"], hint)
            lines.append(json.dumps(row, ensure_ascii=False))
        writer.add_bytes(("\n".join(lines) + "\n").encode("utf-8"), manifest_name)
    except BaseException:
        writer.close()
        dest.unlink(missing_ok=True)
        raise
    writer.close()
    return dest


def convert_coco(annotations: str | os.PathLike[str] | dict[str, Any], images_dir: str | os.PathLike[str],
                 dest: str | os.PathLike[str], *, categories: Sequence[str | int] | None = None,
                 shots: int | None = None, seed: int | None = 0) -> Path:
    """COCO → a file ready to upload: ``.jsonl`` (images inlined) or an archive (images as files)."""
    dest = Path(dest)
    if dest.name.lower().endswith(".jsonl"):
        rows = coco_detection_examples(annotations, images_dir, categories=categories, shots=shots, seed=seed)
        return write_jsonl(dest, rows)
    rows = coco_detection_examples(annotations, images_dir, categories=categories, shots=shots, seed=seed,
                                   image_ref="path")
    return build_archive(dest, rows)


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
