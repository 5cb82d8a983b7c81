// The `countdown` tenant in JavaScript (as examples/countdown in Rust): it acts on its
// own, on `setInterval`, while its clients say nothing.
import { io } from "@nsbox/guest";

/** Each socket's running countdown, by socket id. */
const running = new Map();

function stop(socket) {
  clearInterval(running.get(socket.id));
  running.delete(socket.id);
}

/** `[n, interval_ms]`, or why not. */
function parse([n, ms]) {
  if (!Number.isInteger(n) || !Number.isInteger(ms) || n < 0 || ms < 0) {
    return { error: "expected (n, interval_ms): two whole numbers" };
  }
  if (n < 1 || n > 100 || ms < 10 || ms > 10000) return { error: "n must be 1 to 100 and interval_ms 10 to 10000" };
  return { n, ms };
}

io.on("connection", (socket) => {
  socket.on("countdown", (...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : () => {};
    const { n, ms, error } = parse(args);
    if (error) return ack({ ok: false, error });
    stop(socket);
    let left = n;
    const tick = () => {
      left -= 1;
      socket.emit("tick", left);
      if (left === 0) {
        socket.emit("done");
        stop(socket);
      }
    };
    try {
      running.set(socket.id, setInterval(tick, ms));
    } catch (refused) {
      // Past the tenant's timer limits.
      return ack({ ok: false, error: refused.message });
    }
    ack({ ok: true });
  });
  socket.on("disconnect", () => stop(socket));
});
