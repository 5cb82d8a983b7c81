"""Write an nsbox tenant in Python, in the style of python-socketio's server::

    import nsbox

    sio = nsbox.Server()

    @sio.on("connect")
    def connect(sid, environ, auth):
        if auth.get("token") != "ok":
            raise nsbox.ConnectionRefusedError("unauthorized", {"reason": "bad token"})

    @sio.on("echo")
    def echo(sid, *args):
        return args  # the ack

Build it with ``nsbox-build.sh app.py -o app.wasm`` (componentize-py). The module's
top level runs once, when the component is built, and its state is kept in the
component: register handlers there, and call nothing of the host (storage, timers,
emits) before ``Server.on_start`` or a handler runs.
"""

from . import config, log, storage, timers
from .server import AckError, ConnectionRefusedError, Server
from .storage import StorageError

__all__ = [
    "AckError",
    "ConnectionRefusedError",
    "Server",
    "StorageError",
    "config",
    "log",
    "storage",
    "timers",
]
