"""The tenant's durable keys (``wasi:keyvalue``, the bucket ``default``, and
``nsbox:tenant/storage``): kept across instances, faults, new versions and host
restarts. Values are stored as JSON (``get_bytes``/``set_bytes`` keep bytes as they
are). A quota hit raises ``StorageError`` saying which, and changes nothing."""

import json

from componentize_py_types import Err
from wit_world.imports import atomics, batch, wasi_keyvalue_store
from wit_world.imports import storage as nsbox_storage


class StorageError(Exception):
    """Why a storage operation failed; it changed nothing."""


_bucket = None


def _message(error) -> str:
    value = getattr(error, "value", error)
    if isinstance(value, wasi_keyvalue_store.Error_Other):
        return value.value
    if isinstance(value, wasi_keyvalue_store.Error_NoSuchStore):
        return "no such store"
    if isinstance(value, wasi_keyvalue_store.Error_AccessDenied):
        return "access denied"
    return str(value)


def _run(operation):
    """Runs ``operation`` on the tenant's bucket (opened once per instance)."""
    global _bucket
    try:
        if _bucket is None:
            _bucket = wasi_keyvalue_store.open("default")
        return operation(_bucket)
    except Err as error:
        raise StorageError(_message(error)) from None


def _to_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _from_json(key, data: bytes):
    try:
        return json.loads(data)
    except ValueError as error:
        raise StorageError(f"{key}: cannot decode: {error}") from None


def get(key: str):
    """The value of ``key`` decoded from JSON; ``None`` when there is none."""
    data = _run(lambda b: b.get(key))
    return None if data is None else _from_json(key, data)


def set(key: str, value) -> None:
    """Sets ``key`` to ``value``, stored as JSON."""
    data = _to_json(value)
    _run(lambda b: b.set(key, data))


def get_bytes(key: str):
    """The bytes of ``key`` as they were stored; ``None`` when there is none."""
    return _run(lambda b: b.get(key))


def set_bytes(key: str, data: bytes) -> None:
    """Sets ``key`` to ``data`` as it is."""
    _run(lambda b: b.set(key, bytes(data)))


def delete(key: str) -> None:
    """Removes ``key`` (nothing when there is none)."""
    _run(lambda b: b.delete(key))


def exists(key: str) -> bool:
    """Whether ``key`` has a value."""
    return _run(lambda b: b.exists(key))


def increment(key: str, delta: int = 1) -> int:
    """Adds ``delta`` to the counter ``key`` (its decimal digits); the new value."""
    return _run(lambda b: atomics.increment(b, key, delta))


def compare_and_swap(key: str, expected, new) -> bool:
    """Sets ``key`` to ``new`` (removes it when ``None``) if and only if its value is now
    ``expected`` (``None``: the key does not exist), atomically; whether it did."""
    before = None if expected is None else _to_json(expected)
    after = None if new is None else _to_json(new)
    return _run(lambda b: nsbox_storage.compare_and_swap(b, key, before, after))


def get_many(keys: list) -> list:
    """The values of several keys (``None`` where there is none), decoded from JSON."""
    found = _run(lambda b: batch.get_many(b, list(keys)))
    return [None if entry is None else _from_json(key, entry[1]) for key, entry in zip(keys, found)]


def set_many(entries: dict) -> None:
    """Sets several keys at once."""
    pairs = [(key, _to_json(value)) for key, value in entries.items()]
    _run(lambda b: batch.set_many(b, pairs))


def delete_many(keys: list) -> None:
    """Removes several keys at once."""
    _run(lambda b: batch.delete_many(b, list(keys)))


def keys_page(prefix: str, cursor=None, limit: int = 1000):
    """One page of the keys that start with ``prefix``: ``(keys, next cursor or None)``."""
    page = _run(lambda b: nsbox_storage.list_keys(b, prefix, cursor, limit))
    return page.keys, page.cursor


def keys(prefix: str = "") -> list:
    """Every key that starts with ``prefix``, in byte order."""
    found, cursor = keys_page(prefix)
    while cursor is not None:
        more, cursor = keys_page(prefix, cursor)
        found.extend(more)
    return found
