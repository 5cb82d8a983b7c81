// @nsbox/guest: write an nsbox tenant in JavaScript with socket.io's server API.
//
//   import { io } from "@nsbox/guest";
//   io.use((socket, next) => (socket.handshake.auth.token === "ok" ? next() : next(new Error("unauthorized"))));
//   io.on("connection", (socket) => {
//     socket.on("echo", (...args) => args.pop()(...args));
//   });
//
// `io` is the tenant's namespace (what `io.of("/acme")` is in Node). The module's top
// level runs once, when the component is built, and its heap is kept in the
// component: register handlers there, and call nothing of the host (storage,
// timers, logging) before `io.onStart` or a handler runs.
import "./log.js";
import "./jobs.js";
import "./text.js";
import "./random.js";
import "./clock.js";
import "./timers.js";
import { Namespace } from "./namespace.js";

/** The tenant's namespace. */
export const io = new Namespace();
export { storage, StorageError } from "./storage.js";
export { config } from "./config.js";
export { log, logger } from "./log.js";
