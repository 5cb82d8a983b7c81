"""The tenant's namespace with python-socketio's server API: ``@sio.on(event)``
handlers taking the ``sid`` first, a ``connect`` handler that may refuse, return values
as acks, ``sio.emit(..., to=, skip_sid=, callback=)``, rooms and sessions."""

import json
from contextlib import contextmanager
from urllib.parse import quote

from componentize_py_types import Err
from wit_world.imports import cluster, host, sockets, types

from . import log
from .wire import decode, encode

#: Without a timeout, an ack is awaited as long as the contract allows (49 days).
_FOREVER_MS = 0xFFFFFFFF
#: How long ``fetch_sockets_everywhere`` waits by default (as socket.io's Redis adapter).
_FETCH_TIMEOUT_S = 5.0


class ConnectionRefusedError(Exception):
    """Raised by a ``connect`` handler to refuse the client: ``message`` becomes its
    ``connect_error``'s ``err.message``, ``data`` (any JSON value) its ``err.data``."""

    def __init__(self, message="Connection rejected by server", data=None):
        super().__init__(message)
        self.message = message
        self.data = data


class AckError(Exception):
    """What an emit's ``callback`` gets when no answer came: ``reason`` is ``"timeout"``
    or ``"disconnected"`` (only for emits with a ``timeout``)."""

    def __init__(self, reason):
        super().__init__(f"no acknowledgement: {reason}")
        self.reason = reason


def _arity(handler) -> int:
    code = getattr(handler, "__code__", None)
    if code is None or code.co_flags & 0x04:  # *args: as many as given
        return 1 << 30
    count = code.co_argcount
    return count - 1 if hasattr(handler, "__self__") else count


def _as_args(data) -> list:
    """python-socketio's ``data``: nothing, one argument, or a tuple of them."""
    if data is None:
        return []
    if isinstance(data, tuple):
        return list(data)
    return [data]


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    return [str(value)]


def _environ(handshake) -> dict:
    """A WSGI-like environ, as python-socketio gives ``connect`` handlers."""
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in handshake.query)
    address = handshake.address.rsplit(":", 1)[0].strip("[]")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": query,
        "REMOTE_ADDR": address,
        "nsbox.namespace": handshake.namespace,
        "nsbox.issued": handshake.issued,
    }
    for name, value in handshake.headers:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


class Server:
    """The tenant's namespace. Create one at the top level of the tenant's module and
    register handlers on it; the last one created is the one nsbox calls."""

    def __init__(self):
        self.handlers = {}
        self.namespace = ""
        self._start = []
        self._server_listeners = []
        self._recovered = []
        self._handles = {}  # sid -> handle
        self._sids = {}  # handle -> sid
        self._sessions = {}  # sid -> dict
        self._connected = set()  # sids past on-connection
        self._held = None  # emits made while a connect handler runs...
        self._pending_connect = {}  # handle -> ...sent once that socket has joined
        self._awaiting = {}  # request -> (callback, timed)
        self._gathering = {}  # request -> callback of a broadcast with acks
        self._fetching = {}  # request -> callback
        self._current_ack = None
        self._deferred = False
        global _active
        _active = self

    # Registering handlers.

    def on(self, event, handler=None, namespace=None):
        """Registers ``handler`` for ``event`` (``connect``, ``disconnect``, ``*`` for
        any, or a client's event); as a decorator without ``handler``."""

        def register(fn):
            self.handlers[event] = fn
            return fn

        return register if handler is None else register(handler)

    def event(self, handler=None, namespace=None):
        """``@sio.event``: registers a function under its own name."""
        if handler is None:
            return lambda fn: self.on(fn.__name__, fn)
        return self.on(handler.__name__, handler)

    def on_start(self, fn):
        """Runs ``fn()`` when a fresh instance starts (re-arm timers here)."""
        self._start.append(fn)
        return fn

    def on_server_event(self, fn):
        """Runs ``fn(event, *args)`` for each server-side event from the cluster."""
        self._server_listeners.append(fn)
        return fn

    def on_recovered(self, fn):
        """Runs ``fn(sid)`` when connection state recovery (``recovery_window_ms``) gives
        a socket back to its client: its connection dropped and the client came back
        within the window, to the same sid, rooms and session, with every event sent to
        it meanwhile delivered. ``connect`` and ``disconnect`` did not run for the drop."""
        self._recovered.append(fn)
        return fn

    # Sending.

    def _target(self, to=None, room=None, skip_sid=None, except_rooms=None) -> types.Target:
        rooms = _as_list(to) + _as_list(room)
        skipped = [self._handles[sid] for sid in _as_list(skip_sid) if sid in self._handles]
        return types.Target(rooms, _as_list(except_rooms), skipped)

    def emit(self, event, data=None, to=None, room=None, skip_sid=None, namespace=None,
             callback=None, timeout=None, except_rooms=None, volatile=False):
        """Sends ``event`` with ``data`` (one argument, or a tuple of them) to the whole
        namespace, or to ``to``/``room`` (a room, a sid, or a list), leaving out
        ``skip_sid`` (a sid or a list) and ``except_rooms``. With ``callback`` and one
        connected sid in ``to``, the client's answer calls ``callback(*answer)``; with a
        ``timeout`` in seconds, no answer calls ``callback(AckError)``. With
        ``callback`` and anything else (a room, several, everyone), every selected socket
        on every server is asked (socket.io's broadcast with acks; a ``timeout`` is
        needed): ``callback(responses)`` gets the first argument of each answer once all
        have answered, or ``callback(AckError)`` with the answers that came in its
        ``responses``. With ``volatile`` (nsbox's, as socket.io's ``volatile``), a socket
        gets it only if its connection can send it at once. False (and a warning in the
        log) when the arguments are refused."""
        args = _as_args(data)
        if self._held is not None:
            self._held.append(lambda: self.emit(event, data, to, room, skip_sid, namespace, callback, timeout, except_rooms, volatile))
            return True
        encoded = encode(args)
        if callback is not None:
            sid = to if to is not None else room
            handle = self._handles.get(sid) if isinstance(sid, str) else None
            if handle is None:
                return self._broadcast_with_ack(event, encoded, to, room, skip_sid, except_rooms, callback, timeout)
            ms = _FOREVER_MS if timeout is None else min(max(int(timeout * 1000), 0), _FOREVER_MS)
            request = host.emit_with_ack(handle, str(event), encoded, ms)
            self._awaiting[request] = (callback, timeout is not None)
            return True
        try:
            handle = self._handles.get(to) if isinstance(to, str) and room is None and skip_sid is None and except_rooms is None else None
            if handle is not None:
                (host.emit_volatile if volatile else host.emit)(handle, str(event), encoded)
            else:
                target = self._target(to, room, skip_sid, except_rooms)
                (host.broadcast_volatile if volatile else host.broadcast)(target, str(event), encoded)
            return True
        except Err as error:
            log.warn(f'emit of "{event}" refused: {error.value}')
            return False

    def _broadcast_with_ack(self, event, encoded, to, room, skip_sid, except_rooms, callback, timeout):
        if timeout is None:
            raise ValueError(
                "an emit with a callback needs one connected sid in `to`, "
                "or a `timeout` (in seconds) to ask a room or several sockets"
            )
        ms = min(max(int(timeout * 1000), 0), _FOREVER_MS)
        try:
            request = host.broadcast_with_ack(self._target(to, room, skip_sid, except_rooms), str(event), encoded, ms)
        except Err as error:
            log.warn(f'broadcast of "{event}" refused: {error.value}')
            return False
        self._gathering[request] = callback
        return True

    def send(self, data, to=None, room=None, skip_sid=None, namespace=None, callback=None):
        """``emit("message", data, ...)``."""
        return self.emit("message", data, to=to, room=room, skip_sid=skip_sid, callback=callback)

    def call(self, *args, **kwargs):
        raise NotImplementedError("a tenant's calls cannot block: use emit(..., callback=, timeout=)")

    def defer(self):
        """Answers the current event's ack later: returns a function that sends its
        arguments as the answer (once); the handler's return value is then not sent."""
        ack = self._current_ack
        self._deferred = True
        answered = []

        def answer(*values):
            if ack is None or answered:
                return
            answered.append(True)
            self._answer(ack, values)

        return answer

    def _answer(self, ack, values):
        try:
            host.answer(ack, encode(values))
        except Err as error:
            log.warn(f"the ack was refused: {error.value}")

    # Rooms, sessions, disconnection.

    def enter_room(self, sid, room, namespace=None):
        handle = self._handles.get(sid)
        if handle is None:
            return
        try:
            host.join(handle, str(room))
        except Err as error:
            log.debug(f'join of "{room}" refused: {error.value}')

    def leave_room(self, sid, room, namespace=None):
        handle = self._handles.get(sid)
        if handle is not None:
            host.leave(handle, str(room))

    def rooms(self, sid, namespace=None) -> list:
        """The rooms ``sid`` is in, its own included."""
        handle = self._handles.get(sid)
        return [] if handle is None else list(host.rooms(handle))

    def close_room(self, room, namespace=None):
        """Takes every socket out of ``room``."""
        self.sockets_leave(room, room)

    def get_session(self, sid, namespace=None) -> dict:
        return self._sessions.setdefault(sid, {})

    def save_session(self, sid, session, namespace=None):
        self._sessions[sid] = session

    @contextmanager
    def session(self, sid, namespace=None):
        yield self.get_session(sid)

    def disconnect(self, sid, namespace=None, ignore_queue=False):
        """Disconnects ``sid`` from the server side."""
        handle = self._handles.get(sid)
        if handle is not None:
            host.disconnect(handle)

    # nsbox's socket queries, bulk operations and cluster (socket.io's fetchSockets,
    # socketsJoin, socketsLeave, disconnectSockets, serverSideEmit).

    def fetch_sockets(self, room=None) -> list:
        """This server's sockets in ``room`` (every socket without one), in the order
        they joined: ``[{"sid", "rooms"}]``."""
        return [{"sid": s.id, "rooms": list(s.rooms)} for s in sockets.fetch(self._target(room))]

    def fetch_sockets_everywhere(self, callback, room=None, timeout=_FETCH_TIMEOUT_S):
        """Every server's sockets in ``room``: ``callback(sockets, complete)`` once the
        cluster's other servers answered or ``timeout`` (at most 30 s) passed."""
        here = self.fetch_sockets(room)
        ms = min(max(int(timeout * 1000), 0), 30000)
        request = cluster.fetch_sockets(self._target(room), ms)
        self._fetching[request] = lambda remote, complete: callback(
            here + [{"sid": s.id, "rooms": list(s.rooms)} for s in remote], complete
        )

    def sockets_join(self, room, new_room) -> int:
        """Puts the sockets in ``room`` (every socket for ``None``) in ``new_room``, in the whole cluster; how many here."""
        return sockets.join(self._target(room), str(new_room))

    def sockets_leave(self, room, left_room) -> int:
        """Takes the sockets in ``room`` out of ``left_room``, in the whole cluster; how many here."""
        return sockets.leave(self._target(room), str(left_room))

    def disconnect_sockets(self, room=None) -> int:
        """Disconnects the sockets in ``room`` (every socket for ``None``), in the whole cluster; how many here."""
        return sockets.disconnect(self._target(room))

    def server_side_emit(self, event, *args):
        """Sends ``event`` to the tenant's instances on the cluster's other nodes."""
        try:
            cluster.emit(str(event), encode(args))
        except Err as error:
            raise RuntimeError(f"the server-side event was refused: {error.value}") from None

    # What the contract's exports call.

    def _started(self):
        for fn in self._start:
            fn()

    def _admit(self, handle, handshake):
        """Runs the ``connect`` handler; None to accept, else the rejection."""
        sid = handshake.id
        self.namespace = handshake.namespace
        self._handles[sid] = handle
        self._sids[handle] = sid
        self._held = []
        try:
            refusal = None
            handler = self.handlers.get("connect")
            if handler is not None:
                auth = json.loads(handshake.auth) if handshake.auth else {}
                given = [sid, _environ(handshake), auth][: max(1, min(3, _arity(handler)))]
                try:
                    if handler(*given) is False:
                        refusal = ConnectionRefusedError()
                except ConnectionRefusedError as error:
                    refusal = error
        except BaseException:
            self._held = None
            raise
        held, self._held = self._held, None
        if refusal is None:
            self._pending_connect[handle] = held
            return None
        self._forget(handle)
        data = None if refusal.data is None else json.dumps(refusal.data)
        return types.Rejection(str(refusal.message), data)

    def _connected_now(self, handle):
        sid = self._sids.get(handle)
        if sid is None:
            return
        self._connected.add(sid)
        for send in self._pending_connect.pop(handle, []):
            send()

    def _recovered_now(self, handle):
        sid = self._sids.get(handle)
        if sid is None:
            return
        for fn in self._recovered:
            fn(sid)

    def _event(self, handle, event, args, ack):
        sid = self._sids.get(handle)
        if sid is None:
            return
        handler = self.handlers.get(event)
        if handler is None and "*" in self.handlers:
            handler = self.handlers["*"]
            args = [event, sid] + args
        elif handler is not None:
            args = [sid] + args
        else:
            return
        self._current_ack, self._deferred = ack, False
        try:
            result = handler(*args)
        finally:
            self._current_ack = None
        if ack is not None and not self._deferred:
            self._answer(ack, _as_args(result))

    def _left(self, handle, reason):
        sid = self._sids.get(handle)
        if sid is None:
            return
        self._pending_connect.pop(handle, None)
        handler = self.handlers.get("disconnect")
        try:
            if handler is not None:
                handler(*[sid, reason][: max(1, min(2, _arity(handler)))])
        finally:
            self._forget(handle)

    def _forget(self, handle):
        sid = self._sids.pop(handle, None)
        self._handles.pop(sid, None)
        self._sessions.pop(sid, None)
        self._connected.discard(sid)

    def _replied(self, request, reply):
        entry = self._awaiting.pop(request, None)
        if entry is None:
            return
        callback, timed = entry
        if isinstance(reply, Err):
            if timed:
                reason = "timeout" if reply.value == types.AckFailure.TIMEOUT else "disconnected"
                callback(AckError(reason))
            return
        callback(*decode(reply.value))

    def _gathered(self, request, responses, complete):
        callback = self._gathering.pop(request, None)
        if callback is None:
            return
        if complete:
            callback(responses)
        else:
            error = AckError("timeout")
            error.responses = responses
            callback(error)

    def _server_event(self, event, args):
        for fn in self._server_listeners:
            fn(event, *args)

    def _sockets_fetched(self, request, remote, complete):
        callback = self._fetching.pop(request, None)
        if callback is not None:
            callback(remote, complete)


#: The server the exports call: the last one created.
_active = None


def active() -> Server:
    """The tenant's server (one is created if the module made none)."""
    return _active if _active is not None else Server()
