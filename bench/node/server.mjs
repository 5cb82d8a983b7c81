// The bench app (see bench/README.md) on Node's socket.io: a dynamic namespace
// behind an auth middleware (auth.token == "ok"), `echo` acks its arguments,
// `broadcast` sends `msg` to the whole namespace. Usage: node server.mjs PORT
// With REDIS_URL set, it joins the other servers on that Redis through
// @socket.io/redis-adapter's sharded adapter (the cluster benchmark).
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? 3100);
let adapter;
if (process.env.REDIS_URL) {
  const { createClient } = await import("redis");
  const { createShardedAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  adapter = createShardedAdapter(pub, sub);
}
const io = new Server(port, { cors: { origin: "*" }, adapter });
const tenants = io.of(/^\/\w+$/);
tenants.use((socket, next) => {
  if (socket.handshake.auth?.token === "ok") return next();
  const error = new Error("unauthorized");
  error.data = { reason: "bad token" };
  next(error);
});
tenants.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });
  socket.on("broadcast", (...args) => socket.nsp.emit("msg", ...args));
});
console.log(`listening on ${port}`);
