"""The server keeps SQLite's WAL open, so a request closing its connection never checkpoints."""

from __future__ import annotations

import sqlite3

from studio import sqlite as studio_sqlite

SQLITE = "django.db.backends.sqlite3"


def write_and_close(path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (x)")
    connection.execute("INSERT INTO t VALUES (1)")
    connection.commit()
    connection.close()


def test_the_last_connection_to_close_deletes_the_wal_unless_one_is_kept_open(tmp_path, monkeypatch):
    monkeypatch.setattr(studio_sqlite, "_kept_open", None)
    path = tmp_path / "studio.sqlite3"
    wal = tmp_path / "studio.sqlite3-wal"
    write_and_close(path)
    assert not wal.exists()  # checkpointed and deleted by the closing connection

    studio_sqlite.keep_wal_open({"ENGINE": SQLITE, "NAME": str(path)})
    write_and_close(path)
    assert wal.exists()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone() == (2,)
    studio_sqlite._kept_open.close()


def test_other_databases_are_left_alone(monkeypatch):
    monkeypatch.setattr(studio_sqlite, "_kept_open", None)
    studio_sqlite.keep_wal_open({"ENGINE": "django.db.backends.postgresql", "NAME": "studio"})
    assert studio_sqlite._kept_open is None
