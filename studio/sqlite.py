"""SQLite (the embedded default) in a server process."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

_kept_open: sqlite3.Connection | None = None


def keep_wal_open(database: Mapping[str, Any]) -> None:
    """In WAL mode, the last connection to a database to close checkpoints the WAL into the main
    file and deletes it. Requests close their connection when they end (`CONN_MAX_AGE=0`), so on
    a quiet server every request was that last connection and paid for a checkpoint (about an
    eighth of a deployment call's server CPU in a profile). A connection the process holds for its
    lifetime avoids that; SQLite still checkpoints as the WAL grows."""
    global _kept_open
    if _kept_open is None and database["ENGINE"].endswith("sqlite3"):
        # Autocommit, and one finished read: it opens the WAL without holding a snapshot (which
        # would stop checkpoints).
        _kept_open = sqlite3.connect(database["NAME"], isolation_level=None, check_same_thread=False)
        _kept_open.execute("SELECT count(*) FROM sqlite_master").fetchall()
