// The tenant's namespace, as socket.io's server-side `Namespace` (what `io.of(nsp)`
// gives in Node): middleware, connections, broadcasts, socket queries and server-side
// events between the tenant's instances on the cluster's nodes.
import { emit as clusterEmit } from "nsbox:tenant/cluster@0.2.3";
import { routesChanged } from "nsbox:js-runtime";
import { BroadcastOperator } from "./broadcast.js";
import { Emitter, Socket } from "./socket.js";
import { encode } from "./wire.js";
import { errorOf } from "./errors.js";
import { runJobs } from "./jobs.js";

/** A socket of this server as `fetchSockets` gives it: socket.io's RemoteSocket, acting on the real one. */
class LocalRemoteSocket {
  constructor(nsp, info, socket) {
    this.id = info.id;
    this.rooms = new Set(info.rooms);
    this.handshake = socket?.handshake;
    this.data = socket?.data ?? {};
    this.socket = socket;
    this.nsp = nsp;
  }

  emit(event, ...args) {
    return this.nsp.to(this.id).emit(event, ...args);
  }

  join(room) {
    return this.nsp.in(this.id).socketsJoin(room);
  }

  leave(room) {
    return this.nsp.in(this.id).socketsLeave(room);
  }

  disconnect() {
    this.nsp.in(this.id).disconnectSockets();
    return this;
  }
}

export class Namespace extends Emitter {
  #middlewares = [];
  #serverListeners = [];
  #startListeners = [];
  /** The connected sockets by handle. */
  #byHandle = new Map();
  /** The connected sockets by id, as socket.io's `nsp.sockets`. */
  sockets = new Map();
  /** The namespace's name, known once a socket has asked to join. */
  name = "";

  /** A middleware for every socket that asks to join: `(socket, next)`; `next(err)` refuses it. */
  use(middleware) {
    this.#middlewares.push(middleware);
    return this;
  }

  /** Runs `listener` when a fresh instance starts (re-arm timers here: they end with an instance). */
  onStart(listener) {
    this.#startListeners.push(listener);
    return this;
  }

  /** A listener for every server-side event from the cluster: `(event, ...args)`. */
  onAnyServerEvent(listener) {
    this.#serverListeners.push(listener);
    return this;
  }

  to(room) {
    return new BroadcastOperator(this).to(room);
  }

  in(room) {
    return this.to(room);
  }

  except(room) {
    return new BroadcastOperator(this).except(room);
  }

  timeout(ms) {
    return new BroadcastOperator(this).timeout(ms);
  }

  get local() {
    return new BroadcastOperator(this).local;
  }

  /** `io.volatile.emit(...)`: each socket gets it only if its connection can send it at once. */
  get volatile() {
    return new BroadcastOperator(this).volatile;
  }

  compress() {
    return this;
  }

  /** Sends `event` to every socket of the namespace. */
  emit(event, ...args) {
    return new BroadcastOperator(this).emit(event, ...args);
  }

  send(...args) {
    return this.emit("message", ...args);
  }

  write(...args) {
    return this.send(...args);
  }

  fetchSockets() {
    return new BroadcastOperator(this).fetchSockets();
  }

  socketsJoin(room) {
    return new BroadcastOperator(this).socketsJoin(room);
  }

  socketsLeave(room) {
    return new BroadcastOperator(this).socketsLeave(room);
  }

  disconnectSockets() {
    return new BroadcastOperator(this).disconnectSockets();
  }

  /** Sends `event` to the tenant's instances on the cluster's other nodes (heard by their `io.on(event)`). */
  serverSideEmit(event, ...args) {
    if (typeof args[args.length - 1] === "function") {
      throw new Error("serverSideEmit with an acknowledgement is not supported");
    }
    try {
      clusterEmit(String(event), encode(args));
    } catch (error) {
      throw errorOf(error, "the server-side event was refused");
    }
    return true;
  }

  /** `fetchSockets`' view of a socket of this server. */
  localSocket(info) {
    return new LocalRemoteSocket(this, info, this.#byHandle.get(info.socket));
  }

  /** `fetchSockets`' view of a socket of another server. */
  remoteSocket(info) {
    return new LocalRemoteSocket(this, info, undefined);
  }

  // What the contract's exports call.

  started() {
    for (const listener of this.#startListeners) listener.call(this);
  }

  /** Runs the middleware chain for a new socket; undefined to accept, else the rejection. */
  admit(handle, handshake) {
    this.name = handshake.namespace;
    const socket = new Socket(this, handle, handshake);
    this.#byHandle.set(handle, socket);
    let outcome;
    const step = (i) => (error) => {
      if (outcome !== undefined) return;
      if (error !== undefined && error !== null) {
        outcome = { error };
        return;
      }
      if (i === this.#middlewares.length) {
        outcome = { accepted: true };
        return;
      }
      this.#middlewares[i].call(this, socket, step(i + 1));
    };
    step(0)();
    // An async middleware may call next() after an await: its jobs run now.
    runJobs();
    if (outcome === undefined) {
      outcome = { error: new Error("a middleware did not call next() before the call returned (nsbox decides within the call)") };
    }
    if (outcome.accepted) return undefined;
    this.#byHandle.delete(handle);
    const { error } = outcome;
    const rejection = { message: String(error?.message ?? error) };
    if (error?.data !== undefined) rejection.data = JSON.stringify(error.data);
    return rejection;
  }

  connected(handle) {
    const socket = this.#byHandle.get(handle);
    if (socket === undefined) return;
    socket.connected = true;
    this.sockets.set(socket.id, socket);
    this.emitLocal("connection", socket);
    this.emitLocal("connect", socket);
  }

  /** Connection state recovery gave the socket back to its client: the same object. */
  recovered(handle) {
    const socket = this.#byHandle.get(handle);
    if (socket === undefined) return;
    socket.recovered = true;
    this.emitLocal("recovered", socket);
  }

  /** `[socket, listener]` when `event` on the socket `handle` reaches that listener alone. */
  route(handle, event) {
    const socket = this.#byHandle.get(handle);
    const listener = socket?.onlyRoute(event);
    return listener === undefined ? undefined : [socket, listener];
  }

  event(handle, event, args, ack) {
    this.#byHandle.get(handle)?.dispatch(event, args, ack);
  }

  left(handle, reason) {
    const socket = this.#byHandle.get(handle);
    if (socket === undefined) return;
    this.#byHandle.delete(handle);
    this.sockets.delete(socket.id);
    routesChanged();
    socket.emitLocal("disconnecting", reason);
    socket.connected = false;
    socket.emitLocal("disconnect", reason);
  }

  serverEvent(event, args) {
    for (const listener of this.#serverListeners) listener.call(this, event, ...args);
    if (!["connection", "connect", "recovered"].includes(event)) this.emitLocal(event, ...args);
  }
}
