// The bench app (see bench/README.md) on Node's socket.io: a dynamic namespace
// behind an auth middleware (auth.token == "ok"), `echo` acks its arguments,
// `broadcast` sends `msg` to the whole namespace. Usage: node server.mjs PORT
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? 3100);
const io = new Server(port, { cors: { origin: "*" } });
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
