"""Cursor pagination over OpenAI-style lists (``data``, ``has_more``, ``?after=<last id>``).

``SyncPager`` holds the first page (fetched when the list call is made, so errors surface there) and
iterates over *every* item, fetching further pages on demand. ``AsyncPager`` is the same for
``async for``; ``await pager`` returns the first page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from vrft.types import Page

T = TypeVar("T", bound=BaseModel)


def _next_cursor(page: Page[Any]) -> str | None:
    if not page.has_more or not page.data:
        return None
    cursor: str | None = getattr(page.data[-1], "id", None)
    return cursor


class _OnePage(Generic[T]):
    """What the sync and async pagers say about the page they hold."""

    page: Page[T]

    @property
    def data(self) -> list[T]:
        """Items of the current page only."""
        return list(self.page.data)

    @property
    def has_more(self) -> bool:
        return self.page.has_more

    def has_next_page(self) -> bool:
        return _next_cursor(self.page) is not None


class SyncPager(_OnePage[T]):
    def __init__(self, fetch: Callable[[str | None], Page[T]], after: str | None = None):
        self._fetch = fetch
        self.page = fetch(after)

    def next_page(self) -> SyncPager[T] | None:
        cursor = _next_cursor(self.page)
        return SyncPager(self._fetch, cursor) if cursor else None

    def iter_pages(self) -> Iterator[Page[T]]:
        page = self.page
        while True:
            yield page
            cursor = _next_cursor(page)
            if cursor is None:
                return
            page = self._fetch(cursor)

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"SyncPager(items={len(self.page.data)}, has_more={self.page.has_more})"


class AsyncPage(_OnePage[T]):
    """One fetched page of an async list; ``async for`` continues through the following pages."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[Page[T]]], page: Page[T]):
        self._fetch = fetch
        self.page = page

    async def next_page(self) -> AsyncPage[T] | None:
        cursor = _next_cursor(self.page)
        return AsyncPage(self._fetch, await self._fetch(cursor)) if cursor else None

    async def __aiter__(self) -> AsyncIterator[T]:
        page: AsyncPage[T] | None = self
        while page is not None:
            for item in page.page.data:
                yield item
            page = await page.next_page()


class AsyncPager(Generic[T]):
    def __init__(self, fetch: Callable[[str | None], Awaitable[Page[T]]], after: str | None = None):
        self._fetch = fetch
        self._after = after

    async def _first(self) -> AsyncPage[T]:
        return AsyncPage(self._fetch, await self._fetch(self._after))

    def __await__(self) -> Generator[Any, None, AsyncPage[T]]:
        return self._first().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        async for item in await self._first():
            yield item
