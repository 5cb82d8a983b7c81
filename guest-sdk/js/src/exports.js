// The contract's exports (`handlers`, `cluster-handlers`, `broadcast-handlers`,
// `recovery-handlers`),
// calling into the namespace.
// The build wraps the tenant's module with these.
//
// A JS exception that escapes the tenant's code is a fault: its message and stack go
// to the tenant's log and the call traps, so the host ends the instance as it does for
// a Rust panic. The promise jobs the call queued run before it returns (`jobs.js`); an
// async handler's rejected promise is logged, not a fault.
import { io } from "./index.js";
import { fire } from "./timers.js";
import { answerAck, replied } from "./socket.js";
import { fetched, gathered } from "./broadcast.js";
import { decode } from "./wire.js";
import { log } from "./log.js";
import { runJobs } from "./jobs.js";
import { startClock } from "./clock.js";

/**
 * A value the bindings cannot hand to the host: throwing it from an export that
 * returns a `result` traps instead of returning an error.
 */
const TRAP = { message: Symbol("trap") };

/** Logs an exception that escaped `where` (what ran) and traps the call. */
function fault(where, error) {
  log("error", `uncaught exception in ${where}:`, error);
  throw TRAP;
}

/** Runs `body` and the promise jobs it queued; an exception is a fault. */
function guarded(where, body) {
  try {
    const result = body();
    runJobs();
    return result;
  } catch (error) {
    fault(where, error);
  }
}

export const handlers = {
  onStart() {
    startClock();
    guarded("onStart", () => io.started());
  },
  onTimer(timer) {
    guarded("a timer", () => fire(timer));
  },
  middleware(socket, handshake) {
    const rejection = guarded("middleware", () => io.admit(socket, handshake));
    // A rejection is the contract's error value.
    if (rejection !== undefined) throw rejection;
  },
  onConnection(socket) {
    guarded('the "connection" handler', () => io.connected(socket));
  },
  // The hot path: no closures for `guarded`.
  onEvent(socket, event, args, ack) {
    try {
      io.event(socket, event, decode(args), ack);
      runJobs();
    } catch (error) {
      fault(`the handler of "${event}"`, error);
    }
  },
  onDisconnect(socket, reason) {
    guarded('the "disconnect" handler', () => io.left(socket, reason));
  },
  onAckReply(request, reply) {
    guarded("an ack's callback", () => replied(request, reply));
  },
};

/**
 * The runtime's fast path for an event without binary that reaches one listener alone
 * (`route` says which): the runtime parses the arguments, makes the ack function
 * (answering itself when the answer has no binary, else through `answer`) and calls
 * the listener; then `runJobs`, or `fault` if the listener threw. Otherwise it calls
 * `handlers.onEvent`.
 */
export const eventRoutes = {
  route: (socket, event) => io.route(socket, event),
  answer: answerAck,
  runJobs,
  fault(event, error) {
    fault(`the handler of "${event}"`, error);
  },
};

export const clusterHandlers = {
  onServerEvent(event, args) {
    guarded(`the server-side handler of "${event}"`, () => io.serverEvent(event, decode(args)));
  },
  onSocketsFetched(request, sockets, complete) {
    guarded("fetchSockets' answer", () => fetched(request, sockets, complete));
  },
};

export const recoveryHandlers = {
  onRecovered(socket) {
    guarded('the "recovered" handler', () => io.recovered(socket));
  },
};

export const broadcastHandlers = {
  onBroadcastReplies(request, replies, complete) {
    guarded("a broadcast's ack callback", () => gathered(request, replies, complete));
  },
};
