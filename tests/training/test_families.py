"""One table of model families: the API's (app.catalog) and the trainer's agree."""

from __future__ import annotations

import json

from app import catalog
from app.graders.boxes import COORDS
from tests.training import conftest
from workers.training.model import FAMILIES, coords_for, family_of
from workers.training.tiny import TINY_NAMES


def test_the_trainer_knows_exactly_the_catalog_families():
    assert set(FAMILIES) == set(catalog.FAMILIES) == set(conftest.FAMILIES)
    for name, fam in catalog.FAMILIES.items():
        assert FAMILIES[name].model_types == fam.model_types
        assert coords_for(name) == fam.answer_coords
        assert fam.answer_coords in COORDS  # a convention the box graders can convert
    assert TINY_NAMES == {fam.tiny_model: name for name, fam in catalog.FAMILIES.items()}


def test_each_tiny_model_is_of_the_family_its_name_says(model_cache):
    """The built folder's config.json model_type leads back to the same family on both sides."""
    from workers.training.tiny import resolve_model

    for tiny, family in TINY_NAMES.items():
        folder = resolve_model(tiny, model_cache)
        model_type = json.loads((folder / "config.json").read_text())["model_type"]
        assert catalog.MODEL_TYPES[model_type] == family
        assert family_of(folder) == family


def test_hub_ids_name_their_family():
    from app.config import Settings

    settings = Settings(base_models={})
    for hub_id, family in [("Qwen/Qwen2-VL-2B-Instruct", "qwen2-vl"), ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl"),
                           ("Qwen/Qwen3-VL-4B-Instruct", "qwen3-vl"), ("llava-hf/llava-1.5-7b-hf", None)]:
        assert catalog.family(settings, hub_id) == family
        expected = catalog.FAMILIES[family].answer_coords if family else None
        assert catalog.answer_coords(settings, hub_id) == expected
