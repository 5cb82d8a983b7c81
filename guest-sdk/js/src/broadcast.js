// `io.to(room)`, `socket.broadcast`, `io.except(room)`...: who a broadcast reaches, and
// what can be done to them (socket.io's BroadcastOperator).
import { broadcast, broadcastVolatile, broadcastWithAck } from "nsbox:tenant/host@0.2.3";
import * as sockets from "nsbox:tenant/sockets@0.2.3";
import { fetchSockets as fetchElsewhere } from "nsbox:tenant/cluster@0.2.3";
import { encode, decode } from "./wire.js";
import { log } from "./log.js";

/** How long `fetchSockets` waits for the cluster's other servers by default (as socket.io's Redis adapter). */
const FETCH_TIMEOUT_MS = 5000;
/** The longest the contract lets the other servers take. */
const MAX_FETCH_TIMEOUT_MS = 30000;

/** `fetchSockets` requests waiting for the other servers, by request. */
const fetching = new Map();

/** Broadcasts with acks waiting for their answers, by request. */
const gathering = new Map();

/** Hands a broadcast with acks its answers (the `on-broadcast-replies` export). */
export function gathered(request, replies, complete) {
  const waiting = gathering.get(request);
  if (waiting === undefined) return;
  gathering.delete(request);
  waiting(decode(replies), complete);
}

/** Answers a `fetchSockets` with what the other servers said (the `on-sockets-fetched` export). */
export function fetched(request, remote, complete) {
  const waiting = fetching.get(request);
  if (waiting === undefined) return;
  fetching.delete(request);
  waiting(remote, complete);
}

const asList = (rooms) => (Array.isArray(rooms) ? rooms : [rooms]).map(String);

export class BroadcastOperator {
  /** @param nsp the namespace; the rest as socket.io keeps them. */
  constructor(nsp, rooms = [], exceptRooms = [], exceptSockets = [], flags = {}) {
    this.nsp = nsp;
    this.rooms = rooms;
    this.exceptRooms = exceptRooms;
    this.exceptSockets = exceptSockets;
    this.flags = flags;
  }

  /** The contract's `target`. */
  get target() {
    return { rooms: this.rooms, exceptRooms: this.exceptRooms, exceptSockets: this.exceptSockets };
  }

  /** Also the sockets in `room` (a name or a list). */
  to(room) {
    const rooms = [...new Set([...this.rooms, ...asList(room)])];
    return new BroadcastOperator(this.nsp, rooms, this.exceptRooms, this.exceptSockets, this.flags);
  }

  in(room) {
    return this.to(room);
  }

  /** Not the sockets in `room` (a name or a list). */
  except(room) {
    const except = [...new Set([...this.exceptRooms, ...asList(room)])];
    return new BroadcastOperator(this.nsp, this.rooms, except, this.exceptSockets, this.flags);
  }

  /** How long an `emit` with a callback (or `emitWithAck`) waits for the answers, and `fetchSockets` for the cluster's other servers. */
  timeout(ms) {
    return new BroadcastOperator(this.nsp, this.rooms, this.exceptRooms, this.exceptSockets, { ...this.flags, timeout: ms });
  }

  /** Only this server's sockets (for `fetchSockets`; a broadcast reaches the cluster's). */
  get local() {
    return new BroadcastOperator(this.nsp, this.rooms, this.exceptRooms, this.exceptSockets, { ...this.flags, local: true });
  }

  /** Each selected socket, on every server, gets what is emitted only if its connection can send it at once. */
  get volatile() {
    return new BroadcastOperator(this.nsp, this.rooms, this.exceptRooms, this.exceptSockets, { ...this.flags, volatile: true });
  }

  compress() {
    return this;
  }

  /**
   * Sends `event` to every selected socket; false (and a warning in the log) when the
   * arguments are refused. With a callback last, each socket is asked for an ack, on
   * every server: the callback gets `(null, responses)` once all have answered within
   * `timeout(ms)`, or `(err, responses)` with those that did (socket.io's broadcast
   * with acknowledgements; without `timeout(ms)` it times out at once, as socket.io's).
   */
  emit(event, ...args) {
    const callback = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
    try {
      if (callback === undefined) {
        (this.flags.volatile ? broadcastVolatile : broadcast)(this.target, String(event), encode(args));
        return true;
      }
      const ms = Math.min(Math.max(0, Math.trunc(this.flags.timeout ?? 0)), 0xffffffff);
      const request = broadcastWithAck(this.target, String(event), encode(args), ms);
      gathering.set(request, (responses, complete) => {
        const error = complete ? null : new Error("operation has timed out");
        callback.call(this, error, responses);
      });
      return true;
    } catch (error) {
      log("warn", `broadcast of "${event}" refused:`, error?.payload ?? error);
      return false;
    }
  }

  /** `emit` with acks as a promise: every response, or a rejection on timeout (with `error.responses`). */
  emitWithAck(event, ...args) {
    return new Promise((resolve, reject) => {
      const sent = this.emit(event, ...args, (error, responses) => {
        if (error === null) return resolve(responses);
        error.responses = responses;
        reject(error);
      });
      if (!sent) reject(new Error(`broadcast of "${event}" refused`));
    });
  }

  /**
   * The selected sockets: this server's, and the cluster's other servers' unless `local`.
   * Rejects when a server did not answer in time, with what did arrive as `error.sockets`.
   */
  fetchSockets() {
    const here = sockets.fetch(this.target).map((info) => this.nsp.localSocket(info));
    if (this.flags.local) return Promise.resolve(here);
    const timeout = Math.min(this.flags.timeout ?? FETCH_TIMEOUT_MS, MAX_FETCH_TIMEOUT_MS);
    const request = fetchElsewhere(this.target, Math.max(0, Math.trunc(timeout)));
    return new Promise((resolve, reject) => {
      fetching.set(request, (remote, complete) => {
        const all = [...here, ...remote.map((info) => this.nsp.remoteSocket(info))];
        if (complete) return resolve(all);
        // As socket.io's adapters do; what did arrive is on the error.
        const error = new Error("timeout reached while waiting for fetchSockets response");
        error.sockets = all;
        reject(error);
      });
    });
  }

  /** Puts the selected sockets in `room` (a name or a list), in the whole cluster; how many here. */
  socketsJoin(room) {
    return asList(room).reduce((n, r) => Math.max(n, sockets.join(this.target, r)), 0);
  }

  /** Takes the selected sockets out of `room` (a name or a list), in the whole cluster; how many here. */
  socketsLeave(room) {
    return asList(room).reduce((n, r) => Math.max(n, sockets.leave(this.target, r)), 0);
  }

  /** Disconnects the selected sockets, in the whole cluster; how many here. */
  disconnectSockets() {
    return sockets.disconnect(this.target);
  }
}
