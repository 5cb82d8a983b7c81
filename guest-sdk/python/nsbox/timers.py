"""Timers: a call into the tenant after a delay, once or repeating, under the same
limits as any other call. They end with the instance (a fault, a new version, an
eviction); re-arm what you need in ``Server.on_start``."""

from componentize_py_types import Err
from wit_world.imports import timers

_pending = {}


def _arm(seconds, callback, args, repeat):
    ms = min(max(int(seconds * 1000), 10), 0xFFFFFFFF)
    try:
        timer = timers.set(ms, repeat)
    except Err as error:
        raise RuntimeError(f"the timer was refused: {error.value}") from None
    _pending[timer] = (callback, args, repeat)
    return timer


def call_later(seconds: float, callback, *args) -> int:
    """Calls ``callback(*args)`` once after ``seconds`` (at least 10 ms); the timer."""
    return _arm(seconds, callback, args, False)


def call_every(seconds: float, callback, *args) -> int:
    """Calls ``callback(*args)`` every ``seconds`` (at least 10 ms); the timer."""
    return _arm(seconds, callback, args, True)


def cancel(timer: int) -> bool:
    """Cancels ``timer``: it fires no more. True if it was pending."""
    _pending.pop(timer, None)
    return timers.cancel(timer)


def fire(timer: int) -> None:
    """Runs the timer that fired (the ``on-timer`` export)."""
    entry = _pending.get(timer)
    if entry is None:
        return
    callback, args, repeat = entry
    if not repeat:
        del _pending[timer]
    callback(*args)
