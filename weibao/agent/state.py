"""What the agent remembers about each device between rounds: counters, uptime, last configuration.

Kept as one JSON file in the data directory, written atomically with mode 0600 (configurations and
counters are the client's data). Pollers read the previous value and put the new one; the caller saves.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from weibao.core.files import write_atomic


class StateStore:
    """A per-device key-value memory, persisted by ``save()`` when a path is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}  # a damaged memory costs one round of rates, not the run
            if isinstance(loaded, dict):
                self._data = {k: v for k, v in loaded.items() if isinstance(v, dict)}

    @classmethod
    def in_dir(cls, data_dir: Path, name: str = "state.json") -> StateStore:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(data_dir / name)

    def get(self, device: str, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._data.get(device, {}).get(key, default)

    def put(self, device: str, key: str, value: Any) -> None:
        with self._lock:
            self._data.setdefault(device, {})[key] = value

    def forget(self, device: str) -> None:
        with self._lock:
            self._data.pop(device, None)

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self._data, ensure_ascii=False, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, text)
