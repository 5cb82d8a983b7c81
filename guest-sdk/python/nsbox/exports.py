"""The contract's exports (``handlers`` and the optional interfaces), calling into the
tenant's ``Server``. The build names this module as the component's entry after
importing the tenant's module.

A Python exception that escapes the tenant's code is a fault: its traceback goes to the
tenant's log and the call traps, so the host ends the instance as it does for a Rust
panic."""

import traceback

from componentize_py_types import Err
from wit_world import exports

from . import log, timers
from .server import active
from .wire import decode


def _guarded(where, body):
    try:
        return body()
    except Err:
        raise
    except BaseException as error:
        # The innermost frames: a RecursionError's thousand would cost the call its CPU.
        lines = traceback.format_exception(type(error), error, error.__traceback__, limit=-20)
        summary = f"{type(error).__name__}: {error}"
        log.error(f"uncaught exception in {where}: {summary}\n{''.join(lines).strip()}")
        # Trapped with a shallow exception: componentize-py prints what escapes, and a
        # deep one (a RecursionError's) would cost the call its CPU.
        raise _Fault(where) from None


class _Fault(Exception):
    """What escapes an export after a tenant's exception: the call traps."""


class Handlers(exports.Handlers):
    def on_start(self) -> None:
        _guarded("on_start", lambda: active()._started())

    def on_timer(self, timer: int) -> None:
        _guarded("a timer", lambda: timers.fire(timer))

    def middleware(self, socket: int, handshake) -> None:
        rejection = _guarded('the "connect" handler', lambda: active()._admit(socket, handshake))
        if rejection is not None:
            raise Err(rejection)

    def on_connection(self, socket: int) -> None:
        _guarded("on_connection", lambda: active()._connected_now(socket))

    def on_event(self, socket: int, event: str, args, ack) -> None:
        _guarded(f'the handler of "{event}"', lambda: active()._event(socket, event, decode(args), ack))

    def on_disconnect(self, socket: int, reason: str) -> None:
        _guarded('the "disconnect" handler', lambda: active()._left(socket, reason))

    def on_ack_reply(self, request: int, reply) -> None:
        _guarded("an emit's callback", lambda: active()._replied(request, reply))


class ClusterHandlers(exports.ClusterHandlers):
    def on_server_event(self, event: str, args) -> None:
        _guarded(f'the server-side event "{event}"', lambda: active()._server_event(event, decode(args)))

    def on_sockets_fetched(self, request: int, sockets, complete: bool) -> None:
        _guarded("fetch_sockets_everywhere's callback", lambda: active()._sockets_fetched(request, sockets, complete))


class RecoveryHandlers(exports.RecoveryHandlers):
    def on_recovered(self, socket: int) -> None:
        _guarded("on_recovered", lambda: active()._recovered_now(socket))


class BroadcastHandlers(exports.BroadcastHandlers):
    def on_broadcast_replies(self, request: int, replies, complete: bool) -> None:
        _guarded("a broadcast's callback", lambda: active()._gathered(request, decode(replies), complete))
