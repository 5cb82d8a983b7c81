"""The ``echo`` tenant in Python: the same events, the same answers as the Rust one
(examples/echo, specified in examples/README.md), in python-socketio's style."""

import json

import nsbox
from nsbox import config, storage

sio = nsbox.Server()

#: What the tenant's instances on other nodes sent this instance, in order.
heard = []


def text(args, i):
    """Argument ``i`` if it is a string, else ``""``."""
    return args[i] if len(args) > i and isinstance(args[i], str) else ""


def answer(operation):
    """``{"ok": True, "value": ...}``, or ``{"ok": False, "error": ...}`` when the storage refused."""
    try:
        return {"ok": True, "value": operation()}
    except nsbox.StorageError as error:
        return {"ok": False, "error": str(error)}


@sio.on("connect")
def connect(sid, environ, auth):
    # The Rust echo's three middlewares, in one connect handler.
    trail = ["m1"]
    if not isinstance(auth, dict) or auth.get("token") != "ok":
        raise nsbox.ConnectionRefusedError("unauthorized", {"reason": "bad token"})
    trail += ["m2", "m3"]
    sio.save_session(sid, {"trail": trail})
    # Sent once the socket has joined, as python-socketio does.
    sio.emit("hello", {"nsp": sio.namespace, "id": sid})


@sio.on_recovered
def recovered(sid):
    # Connection state recovery gave the socket back to its client, its session as it was.
    sio.emit("recovered", {"id": sid, "trail": sio.get_session(sid).get("trail", [])}, to=sid)


@sio.on("echo")
def echo(sid, *args):
    return args


@sio.on("broadcast")
def broadcast(sid, *args):
    sio.emit("msg", tuple(args))


@sio.on("volatile")
def volatile(sid, *args):
    sio.emit("msg", tuple(args), to=sid, volatile=True)
    return True


@sio.on("join")
def join(sid, *args):
    room = text(args, 0)
    sio.enter_room(sid, room)
    return room


@sio.on("leave")
def leave(sid, *args):
    room = text(args, 0)
    sio.leave_room(sid, room)
    return room


@sio.on("to-room")
def to_room(sid, *args):
    sio.emit("msg", tuple(args[1:]), to=text(args, 0), skip_sid=sid)


@sio.on("whoami")
def whoami(sid, *args):
    return {"nsp": sio.namespace, "trail": sio.get_session(sid).get("trail", [])}


@sio.on("bye")
def bye(sid, *args):
    sio.disconnect(sid)


@sio.on("server-emit")
def server_emit(sid, *args):
    try:
        sio.server_side_emit(text(args, 0), *args[1:])
        return True
    except RuntimeError:
        return False


@sio.on_server_event
def on_server_event(event, *args):
    attachments = []

    def placeholders(value):
        if isinstance(value, bytes):
            attachments.append(value)
            return {"_placeholder": True, "num": len(attachments) - 1}
        if isinstance(value, dict):
            return {k: placeholders(v) for k, v in value.items()}
        if isinstance(value, list):
            return [placeholders(v) for v in value]
        return value

    text_args = json.dumps(placeholders(list(args)), separators=(",", ":"), ensure_ascii=False)
    heard.append({"event": event, "args": text_args, "attachments": len(attachments)})


@sio.on("server-heard")
def server_heard(sid, *args):
    return (heard,)


def room_of(args):
    return args[0] if args and isinstance(args[0], str) else None


@sio.on("fetch")
def fetch(sid, *args):
    return ([s["sid"] for s in sio.fetch_sockets(room_of(args))],)


@sio.on("fetch-all")
def fetch_all(sid, *args):
    reply = sio.defer()
    sio.fetch_sockets_everywhere(
        lambda sockets, complete: reply({"ids": sorted(s["sid"] for s in sockets), "complete": complete}),
        room=room_of(args),
        timeout=2.0,
    )


@sio.on("sockets-join")
def sockets_join(sid, *args):
    return sio.sockets_join(text(args, 0), text(args, 1))


@sio.on("sockets-leave")
def sockets_leave(sid, *args):
    room = text(args, 0)
    return sio.sockets_leave(room, room)


@sio.on("kick")
def kick(sid, *args):
    room = text(args, 0)
    # Answered first: the sender may be among those disconnected.
    sio.defer()(len(sio.fetch_sockets(room)))
    sio.disconnect_sockets(room)


@sio.on("ask")
def ask(sid, *args):
    reply = sio.defer()

    def answered(*answer):
        if answer and isinstance(answer[0], nsbox.AckError):
            reply({"error": answer[0].reason})
        else:
            reply({"answer": answer[0] if answer else None})

    sio.emit("question", "ping?", to=sid, callback=answered, timeout=2.0)


@sio.on("poll")
def poll(sid, *args):
    room = args[0] if args and isinstance(args[0], str) else ""
    wait = args[1] if len(args) > 1 and isinstance(args[1], int) and not isinstance(args[1], bool) and args[1] >= 0 else 2000
    wait = min(max(wait, 1), 10000)
    reply = sio.defer()

    def gathered(result):
        if isinstance(result, nsbox.AckError):
            reply({"answers": result.responses, "complete": False})
        else:
            reply({"answers": result, "complete": True})

    if not sio.emit("question", to=room, skip_sid=sid, callback=gathered, timeout=wait / 1000):
        reply({"error": "the poll was refused"})


# Storage: the tenant's own keys, kept across instances and restarts.


@sio.on("store")
def store(sid, *args):
    value = args[1] if len(args) > 1 else None
    return answer(lambda: storage.set(text(args, 0), value))


@sio.on("load")
def load(sid, *args):
    return answer(lambda: storage.get(text(args, 0)))


@sio.on("forget")
def forget(sid, *args):
    return answer(lambda: storage.delete(text(args, 0)))


@sio.on("count")
def count(sid, *args):
    delta = args[1] if len(args) > 1 and isinstance(args[1], int) and args[1] >= 0 else 1
    return answer(lambda: storage.increment(text(args, 0), delta))


@sio.on("swap")
def swap(sid, *args):
    expected = args[1] if len(args) > 1 else None
    new = args[2] if len(args) > 2 else None
    return answer(lambda: storage.compare_and_swap(text(args, 0), expected, new))


@sio.on("keys")
def keys(sid, *args):
    return answer(lambda: storage.keys(text(args, 0)))


@sio.on("config")
def get_config(sid, *args):
    # A tuple: one argument, even when it is None.
    if args and isinstance(args[0], str):
        return (config.get(args[0]),)
    return config.all()
