"""A small thread-safe LRU cache bounded by total weight (rows, usually)."""

from __future__ import annotations

import collections
import threading
from typing import Any


class LRU:
    """Least-recently-used map; ``put`` evicts the oldest entries past ``max_weight``."""

    def __init__(self, max_weight: int):
        self.max_weight = max_weight
        self._data: collections.OrderedDict[Any, tuple[Any, int]] = collections.OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Any) -> Any:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            self._data.move_to_end(key)
            return found[0]

    def put(self, key: Any, value: Any, weight: int = 1) -> Any:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._data[key] = (value, weight)
            self._weight += weight
            self._evict(1)
        return value

    def resize(self, max_weight: int) -> None:
        """Change the bound, evicting the oldest entries past it at once (all of them for 0)."""
        with self._lock:
            self.max_weight = max_weight
            self._evict(1 if max_weight > 0 else 0)

    def _evict(self, keep: int) -> None:
        """Drop the oldest entries while over the bound, keeping at least ``keep``."""
        while self._weight > self.max_weight and len(self._data) > keep:
            _, (_, w) = self._data.popitem(last=False)
            self._weight -= w

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weight = 0

    @property
    def weight(self) -> int:
        """The total weight of the entries held."""
        return self._weight

    def __len__(self) -> int:
        return len(self._data)
