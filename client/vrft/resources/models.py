"""``client.models``: base models the operator configured plus this project's fine-tuned models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vrft.pagination import AsyncPager, SyncPager
from vrft.types import Model, Page

if TYPE_CHECKING:
    from vrft._client import AsyncClient, Client


class Models:
    def __init__(self, client: Client):
        self._client = client

    def list(self) -> SyncPager[Model]:
        return SyncPager(lambda _cursor: self._client.call("GET", "/v1/models", Page[Model]))

    def retrieve(self, model_id: str) -> Model:
        """Found in the list (the server has no per-model route); ``KeyError`` when absent."""
        for model in self.list():
            if model.id == model_id:
                return model
        raise KeyError(model_id)


class AsyncModels:
    def __init__(self, client: AsyncClient):
        self._client = client

    def list(self) -> AsyncPager[Model]:
        async def fetch(_cursor: str | None) -> Page[Model]:
            return await self._client.call("GET", "/v1/models", Page[Model])
        return AsyncPager(fetch)

    async def retrieve(self, model_id: str) -> Model:
        async for model in self.list():
            if model.id == model_id:
                return model
        raise KeyError(model_id)
