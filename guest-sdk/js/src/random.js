// `Math.random` and `crypto.getRandomValues` from the host's randomness (wasi:random).
// The engine's own generator was seeded when the component was built, and its state
// is part of the snapshot every instance starts from: each instance would draw the
// same numbers.
import { getRandomBytes } from "wasi:random/random@0.2.0";
import { asBytes } from "./wire.js";

/** Random bytes drawn ahead, a host call per `POOL_BYTES`. */
const POOL_BYTES = 4096;
let pool = new Uint8Array(0);
let used = 0;

/** `count` (at most `POOL_BYTES`) fresh random bytes. */
function take(count) {
  if (used + count > pool.length) {
    pool = asBytes(getRandomBytes(POOL_BYTES));
    used = 0;
  }
  used += count;
  return pool.subarray(used - count, used);
}

/** A double in [0, 1) from 53 random bits. */
Math.random = () => {
  const b = take(7);
  return (
    ((b[0] & 0x1f) * 2 ** 48 + b[1] * 2 ** 40 + b[2] * 2 ** 32 + b[3] * 2 ** 24 + ((b[4] << 16) | (b[5] << 8) | b[6])) /
    2 ** 53
  );
};

/** The largest request `getRandomValues` takes, as on the web. */
const MAX_RANDOM_VALUES_BYTES = 65536;

globalThis.crypto ??= {
  /** Fills an integer typed array with random values and returns it. */
  getRandomValues(array) {
    if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array || array instanceof DataView) {
      throw new TypeError("getRandomValues takes an integer typed array");
    }
    if (array.byteLength > MAX_RANDOM_VALUES_BYTES) {
      throw new RangeError(`getRandomValues takes at most ${MAX_RANDOM_VALUES_BYTES} bytes`);
    }
    const bytes = asBytes(getRandomBytes(array.byteLength));
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes);
    return array;
  },
  /** A random (version 4) UUID. */
  randomUUID() {
    const b = take(16).slice();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  },
};
