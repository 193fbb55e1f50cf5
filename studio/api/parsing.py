"""Reading a request through a serializer: the one place views turn input into validated data."""

from __future__ import annotations

from typing import Any


def validated(serializer_class, data) -> dict[str, Any]:
    """Validated data of `data` (a request body or query params); a 400 envelope otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
