// A JavaScript tenant that misbehaves on purpose, for the sandbox tests: each fault of
// the Rust hostile examples, in JS. Otherwise it acks `echo`.
//
// - middleware: `auth.throw` throws, `auth.spin` loops forever;
// - `throw`: throws an Error from the handler; `reject`: an async handler that rejects;
// - `spin`: loops forever; `grow`: allocates until the memory limit;
// - `flood`: emits to the sender without end; `deep`: recurses without end.
import { io } from "@nsbox/guest";

const ackOf = (args) => (typeof args[args.length - 1] === "function" ? args.pop() : () => {});

io.use((socket, next) => {
  const { auth } = socket.handshake;
  if (auth.throw) throw new Error("thrown in middleware on purpose");
  if (auth.spin) for (;;);
  next();
});

/** Kept across calls, so that the memory is really held. */
const hoard = [];

io.on("connection", (socket) => {
  socket.on("echo", (...args) => ackOf(args)(...args));
  socket.on("throw", () => {
    throw new Error("thrown in a handler on purpose");
  });
  socket.on("reject", async () => {
    throw new Error("rejected in an async handler on purpose");
  });
  socket.on("spin", () => {
    for (;;);
  });
  socket.on("grow", () => {
    for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
  });
  socket.on("flood", () => {
    for (;;) socket.emit("spam", "again");
  });
  socket.on("deep", () => {
    const down = (n) => down(n + 1) + 1;
    down(0);
  });
});
