"""A Python tenant that misbehaves on purpose, for the sandbox tests: the faults of the
JavaScript hostile example (examples/js/hostile), in Python. Otherwise it acks ``echo``.

- connect: ``auth.throw`` raises, ``auth.spin`` loops forever;
- ``throw``: raises from the handler; ``reject``: raises later, from a timer;
- ``spin``: loops forever; ``grow``: allocates until the memory limit;
- ``flood``: emits to the sender without end; ``deep``: recurses without end.
"""

import nsbox

sio = nsbox.Server()

#: Kept across calls, so that the memory is really held.
hoard = []


@sio.on("connect")
def connect(sid, environ, auth):
    if auth.get("throw"):
        raise ValueError("raised in connect on purpose")
    if auth.get("spin"):
        while True:
            pass


@sio.on("echo")
def echo(sid, *args):
    return args


@sio.on("throw")
def throw(sid, *args):
    raise ValueError("raised in a handler on purpose")


@sio.on("reject")
def reject(sid, *args):
    def later():
        raise ValueError("raised in a timer on purpose")

    nsbox.timers.call_later(0.01, later)


@sio.on("spin")
def spin(sid, *args):
    while True:
        pass


@sio.on("grow")
def grow(sid, *args):
    # Chunks as large as the default limit: the limit trips at the first or second
    # growth, long before the CPU deadline, however busy the machine (zeroing 8 MiB
    # chunks until 64 MiB took past 50 ms of CPU under load).
    while True:
        hoard.append(bytearray(64 << 20))


@sio.on("flood")
def flood(sid, *args):
    while True:
        sio.emit("spam", "again", to=sid)


@sio.on("deep")
def deep(sid, *args):
    def down(n):
        return down(n + 1) + 1

    down(0)
