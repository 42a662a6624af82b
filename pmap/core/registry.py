"""An explicit, typed, read-only mapping that refuses duplicate keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class DuplicateKeyError(ValueError):
    """Two entries claimed the same registry key."""


class Registry(Mapping[str, T], Generic[T]):
    """A frozen ``key -> entry`` mapping built once from explicit entries; a duplicate key fails."""

    def __init__(self, name: str, entries: Iterable[T], key: Callable[[T], str]) -> None:
        self.name = name
        items: dict[str, T] = {}
        for entry in entries:
            k = key(entry)
            if k in items:
                raise DuplicateKeyError(f"{name}: duplicate key {k!r}")
            items[k] = entry
        self._items = items

    def __getitem__(self, k: str) -> T:
        return self._items[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
