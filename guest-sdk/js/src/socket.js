// A socket of the tenant's namespace, as socket.io's server-side `Socket`.
import * as host from "nsbox:tenant/host@0.2.3";
import { routesChanged } from "nsbox:js-runtime";
import { BroadcastOperator } from "./broadcast.js";
import { encode, decode } from "./wire.js";
import { log } from "./log.js";

/** Events a socket.io server may not emit (they mean something to the client). */
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);
/** Without `timeout(ms)` socket.io waits for an ack forever; the contract needs a bound. */
const FOREVER_MS = 0xffffffff;

/** Server-to-client acks waiting for their answer, by request. */
const awaiting = new Map();

/** Delivers the answer to an `emit` with an ack (the `on-ack-reply` export). */
export function replied(request, reply) {
  const callback = awaiting.get(request);
  if (callback === undefined) return;
  awaiting.delete(request);
  callback(reply);
}

/** Answers the ack `ack` of `event` with `answer` (an array); a refusal is logged. */
export function answerAck(event, ack, answer) {
  try {
    host.answer(ack, encode(answer));
  } catch (error) {
    log("warn", `the ack of "${event}" was refused:`, error?.payload ?? error);
  }
}

/** A minimal EventEmitter: what socket.io's sockets and namespaces offer. */
export class Emitter {
  #listeners = new Map();

  on(event, listener) {
    const list = this.#listeners.get(event) ?? [];
    this.#listeners.set(event, [...list, listener]);
    routesChanged();
    return this;
  }

  addListener(event, listener) {
    return this.on(event, listener);
  }

  once(event, listener) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      return listener.apply(this, args);
    };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  off(event, listener) {
    if (listener === undefined) this.#listeners.delete(event);
    else {
      const list = (this.#listeners.get(event) ?? []).filter((l) => l !== listener && l.listener !== listener);
      this.#listeners.set(event, list);
    }
    routesChanged();
    return this;
  }

  removeListener(event, listener) {
    return this.off(event, listener);
  }

  removeAllListeners(event) {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    routesChanged();
    return this;
  }

  listeners(event) {
    return [...(this.#listeners.get(event) ?? [])];
  }

  listenerCount(event) {
    return this.listeners(event).length;
  }

  /** The listener of `event` when it has exactly one. */
  onlyListener(event) {
    const list = this.#listeners.get(event);
    return list !== undefined && list.length === 1 ? list[0] : undefined;
  }

  /** Calls the listeners of `event` in order; whether there were any. */
  emitLocal(event, ...args) {
    return this.emitArgs(event, args);
  }

  /** `emitLocal` with the arguments as an array (the hot path: no copies). */
  emitArgs(event, args) {
    // `on` and `off` replace a list rather than change it: iterating it as it is is safe.
    const list = this.#listeners.get(event);
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) list[i].apply(this, args);
    return list.length > 0;
  }
}

/** socket.io's `handshake` from the contract's. */
function handshakeOf(h) {
  const query = {};
  for (const [name, value] of h.query) {
    const before = query[name];
    query[name] = before === undefined ? value : [].concat(before, value);
  }
  const headers = {};
  for (const [name, value] of h.headers) {
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let auth = {};
  try {
    auth = JSON.parse(h.auth) ?? {};
  } catch {
    // The host checks it is JSON; keep {} if not.
  }
  const issued = Number(h.issued);
  // `ip:port` or `[v6]:port`: socket.io gives the address alone.
  const address = h.address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  const search = h.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
  return {
    headers,
    time: new Date(issued).toString(),
    address,
    xdomain: headers.origin !== undefined,
    secure: false,
    issued,
    url: `/socket.io/?${search}`,
    query,
    auth,
  };
}

/** The flags of `socket.timeout(ms)`: what `emit` with a callback waits for. */
class Timed {
  constructor(socket, ms) {
    this.socket = socket;
    this.ms = ms;
  }

  emit(event, ...args) {
    return this.socket.emitFlagged(this.ms, event, args);
  }

  emitWithAck(event, ...args) {
    return this.socket.emitWithAckFlagged(this.ms, event, args);
  }
}

export class Socket extends Emitter {
  #handle;
  #anyListeners = [];
  #anyOutgoingListeners = [];
  #middlewares = [];

  /** @param nsp the namespace; `handle` the contract's; `handshake` the contract's record. */
  constructor(nsp, handle, handshake) {
    super();
    this.#handle = handle;
    this.nsp = nsp;
    this.id = handshake.id;
    this.handshake = handshakeOf(handshake);
    /** Anything the tenant keeps about the socket, in the instance's memory. */
    this.data = {};
    this.connected = false;
    this.recovered = false;
  }

  /** The contract's handle of this socket. */
  get handle() {
    return this.#handle;
  }

  get disconnected() {
    return !this.connected;
  }

  /** The rooms the socket is in, its own id's included. */
  get rooms() {
    return new Set(host.rooms(this.#handle));
  }

  /** Sends `event` to this socket; a function as the last argument asks for an ack. */
  emit(event, ...args) {
    return this.emitFlagged(undefined, event, args);
  }

  /** Sends `event` and resolves with the client's answer (rejects on timeout or disconnection). */
  emitWithAck(event, ...args) {
    return this.emitWithAckFlagged(undefined, event, args);
  }

  /** `socket.timeout(ms).emit(..., (err, ...answer) => ...)`: an ack with a deadline. */
  timeout(ms) {
    return new Timed(this, ms);
  }

  emitFlagged(timeout, event, args) {
    event = String(event);
    if (RESERVED.has(event)) throw new Error(`"${event}" is a reserved event name`);
    const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    const encoded = encode(args);
    this.#notifyOutgoing(event, args);
    if (callback === undefined) {
      try {
        host.emit(this.#handle, event, encoded);
        return true;
      } catch (error) {
        log("warn", `emit of "${event}" refused:`, error?.payload ?? error);
        return false;
      }
    }
    const ms = timeout === undefined ? FOREVER_MS : Math.min(Math.max(0, Math.trunc(timeout)), FOREVER_MS);
    const request = host.emitWithAck(this.#handle, event, encoded, ms);
    awaiting.set(request, (reply) => {
      if (reply.tag === "ok") {
        const answer = decode(reply.val);
        return callback.apply(this, timeout === undefined ? answer : [null, ...answer]);
      }
      // socket.io calls an ack without a timeout only with an answer.
      if (timeout === undefined) return;
      const message = reply.val === "timeout" ? "operation has timed out" : "socket has been disconnected";
      callback.call(this, new Error(message));
    });
    return true;
  }

  emitWithAckFlagged(timeout, event, args) {
    return new Promise((resolve, reject) => {
      const callback = (error, ...answer) => {
        if (error) reject(error);
        else resolve(answer[0]);
      };
      // Without a deadline, wait only for an answer (the contract's bound is 49 days).
      if (timeout === undefined) this.emitFlagged(FOREVER_MS, event, [...args, callback]);
      else this.emitFlagged(timeout, event, [...args, callback]);
    });
  }

  /** `emit("message", ...args)`. */
  send(...args) {
    return this.emit("message", ...args);
  }

  write(...args) {
    return this.send(...args);
  }

  /** Puts the socket in `rooms` (a name or a list); a room limit the host enforces tells and disconnects it. */
  join(rooms) {
    for (const room of Array.isArray(rooms) ? rooms : [rooms]) {
      try {
        host.join(this.#handle, String(room));
      } catch (error) {
        log("debug", `join of "${room}" refused:`, error?.payload ?? error);
      }
    }
  }

  leave(room) {
    host.leave(this.#handle, String(room));
  }

  /** The other sockets in `room` (this one excepted). */
  to(room) {
    return this.broadcast.to(room);
  }

  in(room) {
    return this.to(room);
  }

  except(room) {
    return this.broadcast.except(room);
  }

  /** Every other socket of the namespace. */
  get broadcast() {
    return new BroadcastOperator(this.nsp, [], [], [this.#handle]);
  }

  /** `socket.volatile.emit(...)`: sent only if the connection can send it at once, else dropped (for what is stale once late). */
  get volatile() {
    const socket = this;
    return {
      emit(event, ...args) {
        event = String(event);
        if (RESERVED.has(event)) throw new Error(`"${event}" is a reserved event name`);
        if (typeof args[args.length - 1] === "function") throw new Error("a volatile emit takes no acknowledgement");
        socket.#notifyOutgoing(event, args);
        try {
          host.emitVolatile(socket.#handle, event, encode(args));
          return true;
        } catch (error) {
          log("warn", `emit of "${event}" refused:`, error?.payload ?? error);
          return false;
        }
      },
      compress() {
        return this;
      },
      to: (room) => socket.to(room).volatile,
      in: (room) => socket.to(room).volatile,
      except: (room) => socket.broadcast.except(room).volatile,
      get broadcast() {
        return socket.broadcast.volatile;
      },
    };
  }

  compress() {
    return this;
  }

  /** Disconnects the socket from the server side (the client's reason: `io server disconnect`). */
  disconnect() {
    if (this.connected) host.disconnect(this.#handle);
    return this;
  }

  /** A listener for every incoming event: `(event, ...args)` (with the ack last when asked). */
  onAny(listener) {
    this.#anyListeners.push(listener);
    routesChanged();
    return this;
  }

  prependAny(listener) {
    this.#anyListeners.unshift(listener);
    routesChanged();
    return this;
  }

  offAny(listener) {
    this.#anyListeners = listener === undefined ? [] : this.#anyListeners.filter((l) => l !== listener);
    routesChanged();
    return this;
  }

  listenersAny() {
    return [...this.#anyListeners];
  }

  /** A listener for every event this socket emits: `(event, ...args)` (socket.io's `onAnyOutgoing`). */
  onAnyOutgoing(listener) {
    this.#anyOutgoingListeners.push(listener);
    return this;
  }

  prependAnyOutgoing(listener) {
    this.#anyOutgoingListeners.unshift(listener);
    return this;
  }

  offAnyOutgoing(listener) {
    this.#anyOutgoingListeners =
      listener === undefined ? [] : this.#anyOutgoingListeners.filter((l) => l !== listener);
    return this;
  }

  listenersAnyOutgoing() {
    return [...this.#anyOutgoingListeners];
  }

  #notifyOutgoing(event, args) {
    for (const listener of [...this.#anyOutgoingListeners]) listener.call(this, event, ...args);
  }

  /** A middleware for incoming events: `([event, ...args], next)`; `next(err)` drops the event and emits `error`. */
  use(middleware) {
    this.#middlewares.push(middleware);
    routesChanged();
    return this;
  }

  /** An event from the client (the `on-event` export). */
  dispatch(event, args, ack) {
    // No ack: the bindings lift an empty option as `null`.
    if (ack != null) args.push(this.#acknowledger(event, ack));
    if (this.#middlewares.length === 0) {
      // The common case, without a call more than needed.
      if (this.#anyListeners.length === 0) return this.emitArgs(event, args);
      return this.#deliver(event, args);
    }
    const packet = [event, ...args];
    const chain = this.#middlewares;
    const step = (i) => (error) => {
      if (error) return this.emitLocal("error", error);
      if (i === chain.length) return this.#deliver(packet[0], packet.slice(1));
      chain[i].call(this, packet, step(i + 1));
    };
    step(0)();
  }

  /**
   * The listener `event` reaches when it reaches that one alone (no socket middleware,
   * no `onAny`, one listener): the runtime then calls it itself, with an ack function of
   * its own that answers as `answerAck` does. The runtime keeps the answer until
   * `routesChanged()` says a listener, a middleware or an `onAny` changed.
   */
  onlyRoute(event) {
    if (this.#middlewares.length !== 0 || this.#anyListeners.length !== 0) return undefined;
    return this.onlyListener(event);
  }

  /** The ack function an event's listeners get: answers once, later calls do nothing. */
  #acknowledger(event, ack) {
    let answered = false;
    return (...answer) => {
      if (answered) return;
      answered = true;
      answerAck(event, ack, answer);
    };
  }

  #deliver(event, args) {
    if (this.#anyListeners.length > 0) {
      for (const listener of [...this.#anyListeners]) listener.call(this, event, ...args);
    }
    this.emitArgs(event, args);
  }
}
