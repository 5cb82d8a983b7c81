// `setTimeout`, `setInterval` and their `clear*` over nsbox's timers: a call into the
// tenant after the delay, under the same limits as any other call. Timers end with
// the instance (a fault, a new version, an eviction); re-arm what you need in
// `onStart`. Delays under 10 ms (the default `min_timer_ms`) are raised to 10 ms.
import { set, cancel } from "nsbox:tenant/timers@0.2.3";
import { errorOf } from "./errors.js";

const MIN_DELAY_MS = 10;
const MAX_DELAY_MS = 0xffffffff;

/** Pending timers by the number given to the tenant's code. */
const pending = new Map();

function arm(callback, delay, repeat, args) {
  if (typeof callback !== "function") throw new TypeError("the callback must be a function");
  const ms = Math.min(Math.max(Math.trunc(Number(delay) || 0), MIN_DELAY_MS), MAX_DELAY_MS);
  let timer;
  try {
    timer = set(ms, repeat);
  } catch (error) {
    throw errorOf(error, "the timer was refused");
  }
  const id = Number(timer);
  pending.set(id, { timer, callback, args, repeat });
  return id;
}

function clear(id) {
  const entry = pending.get(Number(id));
  if (entry === undefined) return;
  pending.delete(Number(id));
  cancel(entry.timer);
}

/** Runs the timer that fired (the `on-timer` export). */
export function fire(timer) {
  const id = Number(timer);
  const entry = pending.get(id);
  if (entry === undefined) return;
  if (!entry.repeat) pending.delete(id);
  entry.callback.apply(undefined, entry.args);
}

globalThis.setTimeout = (callback, delay, ...args) => arm(callback, delay, false, args);
globalThis.setInterval = (callback, delay, ...args) => arm(callback, delay, true, args);
globalThis.clearTimeout = clear;
globalThis.clearInterval = clear;
