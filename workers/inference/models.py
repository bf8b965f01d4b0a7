"""What an inference worker keeps loaded: base models (for good) and adapters (an LRU of them).

A base model is loaded on its first request and stays: loading a 2B model costs seconds, a
request should not. Every adapter of that base lives *inside one* peft model as a named adapter
(`load_adapter` / `set_adapter`), so switching adapters is a pointer change, not a reload, and the
base answers with the adapters switched off (`disable_adapter`) — the same network evaluation
uses for "base vs tuned". Adapters are fetched from object storage once, unpacked under
`<cache>/inference-adapters/`, and at most `adapter_cache_size` stay loaded; the least recently
used one is dropped (from memory and disk) when another is needed. Requests for different adapters
of one base can decode in one batch (`routed`, workers/inference/routes.py).

Processors are per pixel bounds: a tuned model is asked with the `min_pixels`/`max_pixels` its job
trained with, so its images are resized as in training and evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from workers.inference.routes import BASE, AdapterRoutes
from workers.training.model import LoadedModel, load_model
from workers.training.processor import load_processor
from workers.training.tiny import resolve_model

log = structlog.get_logger("vrft.inference")


class AdapterMissing(Exception):
    """The adapter's object is not in storage (deleted, or a key from another deployment)."""


@dataclass
class _Base:
    loaded: LoadedModel
    peft: object | None = None  # the PeftModel wrapping loaded.model, once an adapter was loaded
    adapters: OrderedDict[str, Path] = field(default_factory=OrderedDict)  # name -> folder, LRU order
    processors: dict[tuple[int, int], object] = field(default_factory=dict)


def adapter_name(key: str) -> str:
    """A peft adapter name for a storage key (peft names must be plain identifiers)."""
    return "a" + hashlib.sha256(key.encode()).hexdigest()[:20]


class ModelCache:
    """Loaded bases and their adapters. Used by the one decode thread; `lock` guards the maps for readers."""

    def __init__(self, *, cache_dir: Path, adapter_cache_size: int, fetch_adapter, device: str = "auto"):
        self.cache_dir = cache_dir
        self.adapter_cache_size = adapter_cache_size
        self.fetch_adapter = fetch_adapter  # (storage key, destination folder) -> None
        self.device = device
        self.bases: dict[str, _Base] = {}
        self.lock = threading.Lock()
        self.adapter_loads = 0  # adapters fetched and loaded so far (cold requests), for tests and logs

    def _base(self, name: str, location: str) -> _Base:
        if name not in self.bases:
            source = name if location.startswith("builtin:") else location
            loaded = load_model(resolve_model(source, self.cache_dir / "models"), device=self.device)
            loaded.model.eval()
            with self.lock:
                self.bases[name] = _Base(loaded)
            log.info("inference.base_loaded", model=name)
        return self.bases[name]

    def processor(self, name: str, location: str, min_pixels: int, max_pixels: int):
        base = self._base(name, location)
        key = (min_pixels, max_pixels)
        if key not in base.processors:
            base.processors[key] = load_processor(base.loaded.path, min_pixels=min_pixels, max_pixels=max_pixels)
        return base.processors[key]

    def loaded(self, name: str, location: str) -> LoadedModel:
        return self._base(name, location).loaded

    @contextlib.contextmanager
    def network(self, name: str, location: str, adapter_key: str | None):
        """The network to decode with: the base (adapters off) or the base with `adapter_key` active."""
        base = self._base(name, location)
        if adapter_key is None:
            if base.peft is None:
                yield base.loaded.model
            else:
                with base.peft.disable_adapter():
                    yield base.peft
            return
        self._activate(base, adapter_key)
        yield base.peft

    def load_adapters(self, name: str, location: str, keys: list[str]) -> dict[str, AdapterMissing]:
        """Make sure each adapter is loaded (fetched on first use; most recently used afterwards, so a
        batch of at most `adapter_cache_size` of them evicts none of its own) → the keys not in storage."""
        base = self._base(name, location)
        missing: dict[str, AdapterMissing] = {}
        for key in keys:
            try:
                self._activate(base, key)
            except AdapterMissing as exc:
                missing[key] = exc
        return missing

    @contextlib.contextmanager
    def routed(self, name: str, location: str, adapter_keys: list[str | None]):
        """The network for one engine call whose prompt b asks for `adapter_keys[b]` (None: the base) →
        (network, routes to pass the engine as `before_forward`). One adapter for all (or none): that
        adapter switched on and no routes, so the engine keeps its CUDA graphs. Several: the base's peft
        model with each row routed to its prompt's adapter. The adapters must be loaded (`load_adapters`)."""
        if len(set(adapter_keys)) == 1:
            with self.network(name, location, adapter_keys[0]) as net:
                yield net, None
            return
        base = self._base(name, location)
        names = [BASE if key is None else adapter_name(key) for key in adapter_keys]
        with AdapterRoutes(base.peft, names) as routes:
            yield base.peft, routes

    def _activate(self, base: _Base, key: str) -> None:
        name = adapter_name(key)
        if name in base.adapters:
            base.adapters.move_to_end(name)
        else:
            folder = self.cache_dir / "inference-adapters" / name
            shutil.rmtree(folder, ignore_errors=True)
            try:
                self.fetch_adapter(key, folder)
            except FileNotFoundError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                raise AdapterMissing(key) from exc
            self._load(base, name, folder)
            self.adapter_loads += 1
            with self.lock:
                base.adapters[name] = folder
            self._evict(base, keep=name)
        base.peft.set_adapter(name)

    def _load(self, base: _Base, name: str, folder: Path) -> None:
        from peft import PeftModel

        if base.peft is None:
            base.peft = PeftModel.from_pretrained(base.loaded.model, str(folder), adapter_name=name)
            base.peft.eval()
        else:
            base.peft.load_adapter(str(folder), adapter_name=name)
        log.info("inference.adapter_loaded", adapter=name)

    def _evict(self, base: _Base, keep: str) -> None:
        while len(base.adapters) > self.adapter_cache_size:
            name, folder = next(iter(base.adapters.items()))
            if name == keep:
                break
            base.peft.set_adapter(keep)  # peft refuses to delete the active adapter
            base.peft.delete_adapter(name)
            with self.lock:
                del base.adapters[name]
            shutil.rmtree(folder, ignore_errors=True)
            log.info("inference.adapter_evicted", adapter=name)

    def cached_adapters(self, name: str) -> list[str]:
        with self.lock:
            base = self.bases.get(name)
            return list(base.adapters) if base else []
