// Socket.IO arguments across the contract: a JSON array whose binary values (at any
// depth) are `{"_placeholder":true,"num":N}` pointing into the attachments, as
// socket.io-parser does it. Binary arrives as `Uint8Array`; any `ArrayBuffer` or
// view (`Uint8Array`, `DataView`, a Node `Buffer`) may be sent.
import { plainJson } from "nsbox:js-runtime";

/** Is `value` a placeholder socket.io-parser would reconstruct? */
function isPlaceholder(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    value._placeholder === true &&
    Number.isInteger(value.num)
  );
}

/** An attachment as the bindings gave it, as a `Uint8Array` (some lift a list as an array). */
export const asBytes = (attachment) => (attachment instanceof Uint8Array ? attachment : new Uint8Array(attachment));

/** The contract's `args` record as JS values, binary as `Uint8Array`. */
export function decode(args) {
  // A reviver costs a call per value: only when there is binary to put back.
  if (args.attachments.length === 0) {
    const values = JSON.parse(args.json);
    return Array.isArray(values) ? values : [values];
  }
  const attachments = Array.from(args.attachments, asBytes);
  const values = JSON.parse(args.json, (_key, value) =>
    isPlaceholder(value) && value.num >= 0 && value.num < attachments.length
      ? attachments[value.num]
      : value,
  );
  return Array.isArray(values) ? values : [values];
}

/** Bytes of a binary value, or undefined when `value` is not binary. */
function bytesOf(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return undefined;
}

/** Whether `value` holds binary at any depth (as socket.io-parser's `hasBinary`). */
function hasBinary(value, depth = 0) {
  if (value === null || typeof value !== "object" || depth > 200) return false;
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return true;
  if (typeof value.toJSON === "function") return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (hasBinary(value[i], depth + 1)) return true;
    return false;
  }
  for (const key in value) {
    if (Object.prototype.hasOwnProperty.call(value, key) && hasBinary(value[key], depth + 1)) return true;
  }
  return false;
}

/** JS values (an array of arguments) as the contract's `args` record. */
export function encode(values) {
  // Primitives, arrays and plain objects: the runtime writes their JSON natively.
  const plain = plainJson(values);
  if (plain !== undefined) return { json: plain, attachments: [] };
  // A replacer costs a call per value: only when there is binary to take out.
  if (!hasBinary(values)) return { json: JSON.stringify(values), attachments: [] };
  const attachments = [];
  const json = JSON.stringify(values, (_key, value) => {
    const bytes = bytesOf(value);
    if (bytes === undefined) return value;
    attachments.push(bytes);
    return { _placeholder: true, num: attachments.length - 1 };
  });
  return { json, attachments };
}
