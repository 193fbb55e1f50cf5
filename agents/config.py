"""Agent config YAML: safe loading and the version-1 schema (plain Python, no Django)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ConfigError(Exception):
    """A config document that failed to load or validate; every error names its path."""

    def __init__(self, errors: Sequence[Mapping[str, Any]]):
        self.errors = [{"path": str(e["path"]), "message": str(e["message"])} for e in errors]
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in self.errors))
