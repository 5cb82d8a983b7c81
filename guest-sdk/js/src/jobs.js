// Promise jobs, run by the SDK. QuickJS in a component whose exports are synchronous (as
// nsbox calls every tenant) never runs its own job queue, so a native promise's
// callbacks, and the code after an `await`, would never run. The SDK installs a Promise
// of its own whose jobs it runs itself at the end of every call into the tenant
// (`runJobs`), and `nsbox-build` compiles `async`/`await` to generators over it
// (esbuild), so that tenant code makes no native promise.
//
// What it follows of the specification: callbacks run later, never during `then`, in
// the order they were queued; a thenable is adopted in a job of its own; `all`,
// `allSettled`, `any`, `race`, `withResolvers`. A rejection no callback handled by the
// end of the call is logged.
import { jobsQueued } from "nsbox:js-runtime";
import { log } from "./log.js";

/** Jobs to run before the current call returns, in order; `next` is the first not yet run. */
const jobs = [];
let next = 0;

/** Rejected promises without a callback yet: logged if still so when the jobs are done. */
const unhandled = new Set();

/** Queues `job`, and tells the runtime there are jobs to run (it skips `runJobs` otherwise). */
function queue(job) {
  jobs.push(job);
  jobsQueued();
}

const PENDING = 0;
const FULFILLED = 1;
const REJECTED = 2;

// The state of a promise, out of sight of tenant code.
const STATE = Symbol("state");
const VALUE = Symbol("value");
const REACTIONS = Symbol("reactions");

/** Set while the jobs run: a job that asks for them again leaves them to the loop. */
let running = false;

/** Runs every queued job, and the jobs those queue, then logs unhandled rejections. */
export function runJobs() {
  // Most calls queue nothing: no more than this on the way out of each.
  if (running || (jobs.length === 0 && unhandled.size === 0)) return;
  running = true;
  try {
    while (next < jobs.length) {
      const job = jobs[next];
      jobs[next++] = undefined;
      job();
    }
  } finally {
    jobs.length = 0;
    next = 0;
    running = false;
  }
  if (unhandled.size > 0) {
    for (const promise of unhandled) log("error", "unhandled promise rejection:", promise[VALUE]);
    unhandled.clear();
  }
}

/** Settles `promise` once: its callbacks are queued. */
function settle(promise, state, value) {
  const reactions = promise[REACTIONS];
  promise[STATE] = state;
  promise[VALUE] = value;
  promise[REACTIONS] = undefined;
  if (state === REJECTED && reactions.length === 0) {
    unhandled.add(promise);
    jobsQueued();
  }
  for (const reaction of reactions) queueReaction(reaction, state, value);
}

/** Queues the callback of `reaction` (`then`'s) for a promise settled as `state`. */
function queueReaction(reaction, state, value) {
  queue(() => {
    const callback = state === FULFILLED ? reaction.onFulfilled : reaction.onRejected;
    if (typeof callback !== "function") {
      (state === FULFILLED ? reaction.resolve : reaction.reject)(value);
      return;
    }
    let result;
    try {
      result = callback(value);
    } catch (error) {
      reaction.reject(error);
      return;
    }
    reaction.resolve(result);
  });
}

/** The pair of functions that settle `promise`; only the first call of either counts. */
function resolvingFunctions(promise) {
  let done = false;
  const resolve = (resolution) => {
    if (done) return;
    done = true;
    if (resolution === promise) {
      settle(promise, REJECTED, new TypeError("a promise cannot be resolved with itself"));
      return;
    }
    if (resolution === null || (typeof resolution !== "object" && typeof resolution !== "function")) {
      settle(promise, FULFILLED, resolution);
      return;
    }
    let then;
    try {
      then = resolution.then;
    } catch (error) {
      settle(promise, REJECTED, error);
      return;
    }
    if (typeof then !== "function") {
      settle(promise, FULFILLED, resolution);
      return;
    }
    queue(() => {
      const [resolveAgain, rejectAgain] = resolvingFunctions(promise);
      try {
        then.call(resolution, resolveAgain, rejectAgain);
      } catch (error) {
        rejectAgain(error);
      }
    });
  };
  const reject = (reason) => {
    if (done) return;
    done = true;
    settle(promise, REJECTED, reason);
  };
  return [resolve, reject];
}

/** A new promise of constructor `C` with the functions that settle it. */
function capability(C) {
  let resolve;
  let reject;
  const promise = new C((res, rej) => {
    resolve = res;
    reject = rej;
  });
  if (typeof resolve !== "function" || typeof reject !== "function") {
    throw new TypeError("the promise constructor did not give functions to settle it");
  }
  return { promise, resolve, reject };
}

function isPromise(value) {
  return value !== null && typeof value === "object" && STATE in value;
}

/** The constructor `then` makes its promise with: the receiver's, unless it is not one. */
function constructorOf(promise) {
  const C = promise.constructor;
  return typeof C === "function" ? C : Promise;
}

export class Promise {
  constructor(executor) {
    if (typeof executor !== "function") throw new TypeError("Promise resolver is not a function");
    this[STATE] = PENDING;
    this[VALUE] = undefined;
    this[REACTIONS] = [];
    const [resolve, reject] = resolvingFunctions(this);
    try {
      executor(resolve, reject);
    } catch (error) {
      reject(error);
    }
  }

  then(onFulfilled, onRejected) {
    if (!isPromise(this)) throw new TypeError("Promise.prototype.then called on a value that is not a promise");
    const { promise, resolve, reject } = capability(constructorOf(this));
    const reaction = { onFulfilled, onRejected, resolve, reject };
    if (this[STATE] === PENDING) this[REACTIONS].push(reaction);
    else {
      unhandled.delete(this);
      queueReaction(reaction, this[STATE], this[VALUE]);
    }
    return promise;
  }

  catch(onRejected) {
    return this.then(undefined, onRejected);
  }

  finally(onFinally) {
    if (typeof onFinally !== "function") return this.then(onFinally, onFinally);
    const C = constructorOf(this);
    return this.then(
      (value) => C.resolve(onFinally()).then(() => value),
      (reason) =>
        C.resolve(onFinally()).then(() => {
          throw reason;
        }),
    );
  }

  static resolve(value) {
    if (isPromise(value) && value.constructor === this) return value;
    const { promise, resolve } = capability(this);
    resolve(value);
    return promise;
  }

  static reject(reason) {
    const { promise, reject } = capability(this);
    reject(reason);
    return promise;
  }

  static withResolvers() {
    return capability(this);
  }

  /** Settles as the first of `values` to settle. */
  static race(values) {
    const { promise, resolve, reject } = capability(this);
    try {
      for (const value of values) this.resolve(value).then(resolve, reject);
    } catch (error) {
      reject(error);
    }
    return promise;
  }

  static all(values) {
    return gather(this, values, (results, i, resolveAll) => [
      (value) => {
        results[i] = value;
        resolveAll();
      },
      undefined,
    ]);
  }

  static allSettled(values) {
    return gather(this, values, (results, i, resolveAll) => [
      (value) => {
        results[i] = { status: "fulfilled", value };
        resolveAll();
      },
      (reason) => {
        results[i] = { status: "rejected", reason };
        resolveAll();
      },
    ]);
  }

  /** The first of `values` to fulfil; if all reject, an `AggregateError` of their reasons. */
  static any(values) {
    const { promise, resolve, reject } = capability(this);
    const reasons = [];
    let waiting = 1;
    const rejectAll = () => {
      if (--waiting === 0) reject(new AggregateError(reasons, "All promises were rejected"));
    };
    try {
      let i = 0;
      for (const value of values) {
        const at = i++;
        waiting++;
        this.resolve(value).then(resolve, (reason) => {
          reasons[at] = reason;
          rejectAll();
        });
      }
      rejectAll();
    } catch (error) {
      reject(error);
    }
    return promise;
  }

  get [Symbol.toStringTag]() {
    return "Promise";
  }
}

/** `all` and `allSettled`: `handlers` gives the callbacks for the `i`th value. */
function gather(C, values, handlers) {
  const { promise, resolve, reject } = capability(C);
  const results = [];
  let waiting = 1;
  const resolveAll = () => {
    if (--waiting === 0) resolve(results);
  };
  try {
    let i = 0;
    for (const value of values) {
      const [onFulfilled, onRejected] = handlers(results, i++, resolveAll);
      waiting++;
      C.resolve(value).then(onFulfilled, onRejected ?? reject);
    }
    resolveAll();
  } catch (error) {
    reject(error);
  }
  return promise;
}

/** `queueMicrotask`: runs before the current call returns; an exception is logged. */
function queueMicrotask(callback) {
  if (typeof callback !== "function") throw new TypeError("the callback must be a function");
  queue(() => {
    try {
      callback();
    } catch (error) {
      log("error", "uncaught exception in a microtask:", error);
    }
  });
}

globalThis.Promise = Promise;
globalThis.queueMicrotask = queueMicrotask;
