// The tenant's durable keys (`wasi:keyvalue`, the bucket `default`, and
// `nsbox:tenant/storage`): kept across instances, faults, new versions and host
// restarts. Values are stored as JSON (`getBytes`/`setBytes` keep bytes as they are).
// A quota hit throws a `StorageError` saying which, and changes nothing.
import { open } from "wasi:keyvalue/store@0.2.0-draft";
import { increment as atomicIncrement } from "wasi:keyvalue/atomics@0.2.0-draft";
import { getMany, setMany, deleteMany } from "wasi:keyvalue/batch@0.2.0-draft";
import { listKeys, compareAndSwap as hostCompareAndSwap } from "nsbox:tenant/storage@0.2.3";
import { errorOf } from "./errors.js";
import { asBytes } from "./wire.js";

/** Why a storage operation failed; it changed nothing. */
export class StorageError extends Error {
  constructor(message) {
    super(message);
    this.name = "StorageError";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let bucket;

/** Runs `operation` on the tenant's bucket (opened once per instance). */
function withBucket(operation) {
  try {
    bucket ??= open("default");
    return operation(bucket);
  } catch (error) {
    if (error instanceof StorageError) throw error;
    throw new StorageError(errorOf(error, "the storage failed").message);
  }
}

const toJson = (value) => {
  const text = JSON.stringify(value);
  if (text === undefined) throw new StorageError("cannot encode: not a JSON value");
  return encoder.encode(text);
};

function fromJson(key, bytes) {
  try {
    return JSON.parse(decoder.decode(asBytes(bytes)));
  } catch (error) {
    throw new StorageError(`${key}: cannot decode: ${error.message}`);
  }
}

export const storage = {
  /** The value of `key` decoded from JSON; `undefined` when there is none. */
  get(key) {
    const bytes = withBucket((b) => b.get(key));
    return bytes == null ? undefined : fromJson(key, bytes);
  },
  /** Sets `key` to `value`, stored as JSON. */
  set(key, value) {
    const bytes = toJson(value);
    withBucket((b) => b.set(key, bytes));
  },
  /** The bytes of `key` as they were stored; `undefined` when there is none. */
  getBytes(key) {
    const bytes = withBucket((b) => b.get(key));
    return bytes == null ? undefined : asBytes(bytes);
  },
  /** Sets `key` to `bytes` (a `Uint8Array`) as they are. */
  setBytes(key, bytes) {
    withBucket((b) => b.set(key, bytes));
  },
  /** Removes `key` (nothing when there is none). */
  delete(key) {
    withBucket((b) => b.delete(key));
  },
  /** Whether `key` has a value. */
  has(key) {
    return withBucket((b) => b.exists(key));
  },
  /** Adds `delta` (1 by default) to the counter `key` (its decimal digits) and returns the new value. */
  increment(key, delta = 1) {
    if (!Number.isSafeInteger(delta) || delta < 0) {
      throw new StorageError(`the delta must be a whole number from 0 to 2^53 - 1, not ${delta}`);
    }
    return Number(withBucket((b) => atomicIncrement(b, key, delta)));
  },
  /**
   * Sets `key` to `next` (removes it when `undefined`) if and only if its value is now
   * `expected` (`undefined`: the key does not exist), atomically; whether it did.
   */
  compareAndSwap(key, expected, next) {
    const before = expected === undefined ? undefined : toJson(expected);
    const after = next === undefined ? undefined : toJson(next);
    return withBucket((b) => hostCompareAndSwap(b, key, before, after));
  },
  /** The values of several keys (`undefined` where there is none), decoded from JSON. */
  getMany(keys) {
    const found = withBucket((b) => getMany(b, keys));
    return found.map((entry, i) => (entry == null ? undefined : fromJson(keys[i], entry[1])));
  },
  /** Sets several keys at once: `entries` is `[[key, value], ...]` or an object. */
  setMany(entries) {
    const pairs = Array.isArray(entries) ? entries : Object.entries(entries);
    const encoded = pairs.map(([key, value]) => [key, toJson(value)]);
    withBucket((b) => setMany(b, encoded));
  },
  /** Removes several keys at once. */
  deleteMany(keys) {
    withBucket((b) => deleteMany(b, keys));
  },
  /** One page of the keys that start with `prefix`: `{ keys, cursor }` (no cursor after the last). */
  keysPage(prefix, cursor, limit = 1000) {
    const page = withBucket((b) => listKeys(b, prefix, cursor, limit));
    return { keys: page.keys, cursor: page.cursor ?? undefined };
  },
  /** Every key that starts with `prefix`, in byte order. */
  keys(prefix = "") {
    const all = [];
    let cursor;
    do {
      const page = storage.keysPage(prefix, cursor);
      all.push(...page.keys);
      cursor = page.cursor;
    } while (cursor !== undefined);
    return all;
  },
};
