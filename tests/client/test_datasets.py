"""``vrft.datasets``: records → JSONL, COCO → Visual-RFT detection rows, archives the server accepts."""

from __future__ import annotations

import base64
import json
import tarfile
import zipfile

import pytest

import vrft
from vrft import datasets


@pytest.fixture
def coco(tmp_path):
    from PIL import Image

    images_dir = tmp_path / "imgs"
    images_dir.mkdir()
    images = []
    for i, (w, h) in enumerate([(200, 100), (400, 400), (100, 50)], start=1):
        Image.new("RGB", (w, h), (i * 60, 0, 0)).save(images_dir / f"{i:04d}.png")
        images.append({"id": i, "file_name": f"{i:04d}.png", "width": w, "height": h})
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 18, "bbox": [20, 10, 100, 50], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 18, "bbox": [0, 0, 10, 10], "iscrowd": 0},
        {"id": 3, "image_id": 1, "category_id": 17, "bbox": [150, 50, 60, 60], "iscrowd": 0},  # clipped to 1000
        {"id": 4, "image_id": 2, "category_id": 18, "bbox": [0, 0, 400, 400], "iscrowd": 0},
        {"id": 5, "image_id": 3, "category_id": 18, "bbox": [1, 1, 5, 5], "iscrowd": 1},  # crowd: skipped
        {"id": 6, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0},  # unwanted category
    ]
    instances = {"images": images, "annotations": annotations,
                 "categories": [{"id": 1, "name": "person"}, {"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(instances))
    return path, images_dir


def test_box_conversion():
    assert datasets.coco_box_to_norm1000([20, 10, 100, 50], 200, 100) == [100, 100, 600, 600]
    assert datasets.coco_box_to_norm1000([150, 50, 60, 60], 200, 100) == [750, 500, 1000, 1000]
    assert datasets.detection_solution([[1, 2, 3, 4]]) == \
        "<answer>[{'Position': [1, 2, 3, 4], 'Confidence': 1}]</answer>"


def test_coco_detection_examples(coco):
    path, images_dir = coco
    rows = datasets.coco_detection_examples(path, images_dir, categories=["dog", "cat"], seed=None)
    assert [(r["category"], r["image_id"]) for r in rows] == [("dog", 1), ("dog", 2), ("cat", 1)]
    dog1 = rows[0]
    assert dog1["problem"].startswith("Detect all objects belonging to the category 'dog' in the image")
    assert "(between 0 and 1000, integer)" in dog1["problem"] and "'Confidence': number}" in dog1["problem"]
    assert dog1["solution"] == ("<answer>[{'Position': [0, 0, 50, 100], 'Confidence': 1}, "
                                "{'Position': [100, 100, 600, 600], 'Confidence': 1}]</answer>")
    assert dog1["image"].startswith("data:image/png;base64,")
    assert base64.b64decode(dog1["image"].split(",", 1)[1])[:4] == b"\x89PNG"
    assert dog1["image_size"] == [200, 100]
    assert rows[2]["solution"] == "<answer>[{'Position': [750, 500, 1000, 1000], 'Confidence': 1}]</answer>"

    one_shot = datasets.coco_detection_examples(path, images_dir, categories=[18], shots=1, seed=3,
                                                image_ref="relative")
    assert len(one_shot) == 1 and one_shot[0]["image"] in ("0001.png", "0002.png")
    with pytest.raises(KeyError, match="zebra"):
        datasets.coco_detection_examples(path, images_dir, categories=["zebra"])


@pytest.mark.parametrize("name", ["coco.zip", "coco.tar.gz"])
def test_coco_archive_is_accepted_by_the_server(api_client, coco, tmp_path, name):
    path, images_dir = coco
    archive = datasets.convert_coco(path, images_dir, tmp_path / name, categories=["dog", "cat"])
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            manifest = zf.read("train.jsonl").decode()
    else:
        with tarfile.open(archive) as tf:
            names = tf.getnames()
            manifest = tf.extractfile("train.jsonl").read().decode()
    assert sorted(names) == ["images/0001.png", "images/0002.png", "train.jsonl"]  # shared image stored once
    assert [json.loads(line)["image"] for line in manifest.splitlines()] == [
        "images/0001.png", "images/0002.png", "images/0001.png"]

    client = vrft.Client(http_client=api_client, max_retries=0)
    uploaded = client.files.upload(archive)
    assert uploaded.status == "processed", uploaded.status_details
    report = client.files.validation(uploaded.id)
    assert report.rows_valid == 3 and report.image_count >= 2
    grader = {"type": "visual_rft", "name": "det", "task": "detection"}
    answer = "<think>.</think><answer>[{'Position': [750, 500, 1000, 1000], 'Confidence': 0.9}]</answer>"
    item = json.loads(manifest.splitlines()[2])
    assert client.graders.run(grader, answer, item).reward > 2.5


def test_write_jsonl_accepts_pil_paths_and_bytes(tmp_path, coco):
    from PIL import Image

    _, images_dir = coco
    rows = [
        {"image": Image.new("RGB", (8, 8), (0, 0, 255)), "problem": "colour?", "solution": "<answer>blue</answer>"},
        {"image": images_dir / "0001.png", "problem": "colour?", "solution": "<answer>red</answer>", "extra": 1},
        {"image": (images_dir / "0002.png").read_bytes(), "problem": "colour?", "solution": "<answer>red</answer>"},
    ]
    out = [json.loads(line) for line in datasets.write_jsonl(tmp_path / "x.jsonl", rows).read_text().splitlines()]
    assert all(r["image"].startswith("data:image/png;base64,") for r in out) and out[1]["extra"] == 1
    oa = datasets.to_openai_record(out[0])
    assert oa["messages"][0]["content"][0] == {"type": "text", "text": "colour?"}
    assert oa["messages"][0]["content"][1]["image_url"]["url"] == out[0]["image"]
    assert oa["solution"] == "<answer>blue</answer>" and "image" not in oa
    with pytest.raises(ValueError, match="solution"):
        datasets.write_jsonl(tmp_path / "bad.jsonl", [{"image": b"\x89PNG", "problem": "p"}])


def test_openai_archive(tmp_path, coco, api_client):
    _, images_dir = coco
    rows = [{"image": f"{i:04d}.png", "problem": "colour?", "solution": "<answer>red</answer>"} for i in (1, 2, 3)]
    archive = datasets.build_archive(tmp_path / "oa.zip", rows, images_root=images_dir, format="openai")
    with zipfile.ZipFile(archive) as zf:
        first = json.loads(zf.read("train.jsonl").decode().splitlines()[0])
    assert first["messages"][0]["content"][1]["image_url"]["url"] == "images/0001.png"
    uploaded = vrft.Client(http_client=api_client, max_retries=0).files.upload(archive)
    assert uploaded.status == "processed" and uploaded.rows == 3
