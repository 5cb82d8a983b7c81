// The `echo` tenant in JavaScript: the same events, the same answers as the Rust one
// (examples/echo, specified in examples/README.md).
import { io, storage, config } from "@nsbox/guest";

/** What the tenant's instances on other nodes sent this instance, in order. */
const heard = [];

/** The ack function an event was given (its last argument), or a no-op. */
const ackOf = (args) => (typeof args[args.length - 1] === "function" ? args.pop() : () => {});

/** Answers `{ok: true, value}` or `{ok: false, error}`. */
function answer(ack, operation) {
  try {
    const value = operation();
    ack({ ok: true, value: value === undefined ? null : value });
  } catch (error) {
    ack({ ok: false, error: error.message });
  }
}

const str = (value) => (typeof value === "string" ? value : "");

io.use((socket, next) => {
  socket.data.trail = ["m1"];
  next();
});
io.use((socket, next) => {
  if (socket.handshake.auth.token !== "ok") {
    const error = new Error("unauthorized");
    error.data = { reason: "bad token" };
    return next(error);
  }
  socket.data.trail.push("m2");
  next();
});
io.use((socket, next) => {
  socket.data.trail.push("m3");
  next();
});

io.onAnyServerEvent((event, ...args) => {
  // As the Rust echo reports them: their JSON (binary as placeholders) and how many attachments.
  let attachments = 0;
  const json = JSON.stringify(args, (_key, value) =>
    value instanceof Uint8Array ? { _placeholder: true, num: attachments++ } : value,
  );
  heard.push({ event, args: json, attachments });
});

// Connection state recovery gave the socket back to its client: the same object, its
// handlers and data as they were.
io.on("recovered", (socket) => {
  socket.emit("recovered", { id: socket.id, trail: socket.data.trail });
});

io.on("connection", (socket) => {
  io.emit("hello", { nsp: io.name, id: socket.id });

  socket.on("echo", (...args) => ackOf(args)(...args));
  socket.on("broadcast", (...args) => {
    ackOf(args);
    io.emit("msg", ...args);
  });
  socket.on("volatile", (...args) => {
    const ack = ackOf(args);
    socket.volatile.emit("msg", ...args);
    ack(true);
  });
  socket.on("join", (...args) => {
    const ack = ackOf(args);
    const room = str(args[0]);
    socket.join(room);
    ack(room);
  });
  socket.on("leave", (...args) => {
    const ack = ackOf(args);
    const room = str(args[0]);
    socket.leave(room);
    ack(room);
  });
  socket.on("to-room", (...args) => {
    ackOf(args);
    socket.to(str(args[0])).emit("msg", ...args.slice(1));
  });
  socket.on("whoami", (...args) => ackOf(args)({ nsp: io.name, trail: socket.data.trail }));
  socket.on("bye", () => socket.disconnect());

  socket.on("server-emit", (...args) => {
    const ack = ackOf(args);
    try {
      io.serverSideEmit(str(args[0]), ...args.slice(1));
      ack(true);
    } catch {
      ack(false);
    }
  });
  socket.on("server-heard", (...args) => ackOf(args)(heard));

  socket.on("fetch", async (...args) => {
    const ack = ackOf(args);
    const selected = typeof args[0] === "string" ? io.in(args[0]) : io;
    const sockets = await selected.local.fetchSockets();
    ack(sockets.map((s) => s.id));
  });
  socket.on("fetch-all", async (...args) => {
    if (typeof args[args.length - 1] !== "function") return;
    const ack = ackOf(args);
    const selected = typeof args[0] === "string" ? io.in(args[0]) : io;
    let sockets;
    let complete = true;
    try {
      sockets = await selected.timeout(2000).fetchSockets();
    } catch (error) {
      sockets = error.sockets ?? [];
      complete = false;
    }
    ack({ ids: sockets.map((s) => s.id).sort(), complete });
  });
  socket.on("sockets-join", (...args) => {
    const ack = ackOf(args);
    ack(io.in(str(args[0])).socketsJoin(str(args[1])));
  });
  socket.on("sockets-leave", (...args) => {
    const ack = ackOf(args);
    const room = str(args[0]);
    ack(io.in(room).socketsLeave(room));
  });
  socket.on("kick", async (...args) => {
    const ack = ackOf(args);
    const selected = io.in(str(args[0]));
    const sockets = await selected.local.fetchSockets();
    // Answered first: the sender may be among those disconnected.
    ack(sockets.length);
    selected.disconnectSockets();
  });
  socket.on("ask", async (...args) => {
    if (typeof args[args.length - 1] !== "function") return;
    const ack = ackOf(args);
    try {
      const reply = await socket.timeout(2000).emitWithAck("question", "ping?");
      ack({ answer: reply === undefined ? null : reply });
    } catch (error) {
      ack({ error: error.message === "operation has timed out" ? "timeout" : "disconnected" });
    }
  });

  socket.on("poll", (...args) => {
    if (typeof args[args.length - 1] !== "function") return;
    const ack = ackOf(args);
    const room = str(args[0]);
    const wait = Number.isInteger(args[1]) && args[1] >= 0 ? Math.min(Math.max(args[1], 1), 10000) : 2000;
    const sent = socket
      .to(room)
      .timeout(wait)
      .emit("question", (error, answers) => ack({ answers, complete: error === null }));
    if (!sent) ack({ error: "the poll was refused" });
  });

  // Storage: the tenant's own keys, kept across instances and restarts.
  socket.on("store", (...args) => {
    const ack = ackOf(args);
    answer(ack, () => void storage.set(str(args[0]), args[1] === undefined ? null : args[1]));
  });
  socket.on("load", (...args) => answer(ackOf(args), () => storage.get(str(args[0]))));
  socket.on("forget", (...args) => answer(ackOf(args), () => void storage.delete(str(args[0]))));
  socket.on("count", (...args) => {
    const ack = ackOf(args);
    const delta = Number.isInteger(args[1]) && args[1] >= 0 ? args[1] : 1;
    answer(ack, () => storage.increment(str(args[0]), delta));
  });
  socket.on("swap", (...args) => {
    const ack = ackOf(args);
    // null: absent.
    const absent = (value) => (value === null ? undefined : value);
    answer(ack, () => storage.compareAndSwap(str(args[0]), absent(args[1]), absent(args[2])));
  });
  socket.on("keys", (...args) => answer(ackOf(args), () => storage.keys(str(args[0]))));
  socket.on("config", (...args) => {
    const ack = ackOf(args);
    if (typeof args[0] === "string") ack(config.get(args[0]) ?? null);
    else ack(config.all());
  });
});
