"""One-row INSERTs and UPDATEs by primary key for the ledger's hot path, without the ORM's query
compiler. A run writes a dozen such rows (spans, events, budget holds) and a busy process thousands
a second; for a one-row statement, building and compiling the query costs several times what the
database does (benchmarks/README.md, gateway overhead). The statements are cached per model and
column list; every value still goes through its field's own `pre_save` and `get_db_prep_save`,
so what is stored is what `Model.save()` would store. No signals are sent (none are connected to
these models). Names come from the models' metadata; values are always parameters."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection, models


@functools.cache
def _insert_sql(model: type[models.Model], vendor: str):
    """The INSERT of every column but an auto-increment key, which the database returns."""
    meta = model._meta
    with_pk = not isinstance(meta.pk, models.AutoField | models.BigAutoField)
    fields = tuple(field for field in meta.concrete_fields if with_pk or not field.primary_key)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
    if not with_pk:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields, with_pk


@functools.cache
def _update_sql(model: type[models.Model], names: tuple[str, ...], vendor: str):
    meta = model._meta
    fields = tuple(meta.get_field(name) for name in names)
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    return sql, fields


def row_insert(obj: models.Model) -> None:
    """Stores a new instance (PostgreSQL, or SQLite 3.35+ for an auto-increment key, which is
    always the database's: storing the instance again after a rollback takes a new one)."""
    sql, fields, with_pk = _insert_sql(type(obj), connection.vendor)
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if not with_pk:
            obj.pk = cursor.fetchone()[0]
    obj._state.adding = False


def rows_lock(model: type[models.Model], pks: list[Any]) -> None:
    """Locks the rows of `pks` until the transaction ends, in the order of their keys (so that two
    transactions locking some of the same rows never wait for each other in a cycle). On SQLite,
    nothing: its transactions begin IMMEDIATE, holding the database's one write lock already.

    On PostgreSQL the lock is FOR NO KEY UPDATE: it excludes other lockers, but not the KEY SHARE
    that other transactions' foreign key checks take on the row. With FOR UPDATE, a batch of
    another process inserting a span of the organization waited for this one, which could be
    waiting for a budget counter that batch had updated: a deadlock."""
    if not connection.features.has_select_for_update or not pks:
        return
    sql = _lock_sql(model, len(pks), connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [model._meta.pk.get_db_prep_value(pk, connection) for pk in pks])


@functools.cache
def _lock_sql(model: type[models.Model], count: int, vendor: str) -> str:
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    keys = ", ".join(["%s"] * count)
    mode = "FOR NO KEY UPDATE" if vendor == "postgresql" else "FOR UPDATE"
    return f"SELECT 1 FROM {table} WHERE {pk} IN ({keys}) ORDER BY {pk} {mode}"  # noqa: S608


def row_update(model: type[models.Model], pk: Any, **changes: Any) -> int:
    """Sets `changes` (field name, or a foreign key's `_id` name, -> value) on one row; returns how
    many rows matched (0 or 1)."""
    names = tuple(sorted(changes))
    sql, fields = _update_sql(model, names, connection.vendor)
    values = (changes[name] for name in names)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pk])
        return cursor.rowcount
