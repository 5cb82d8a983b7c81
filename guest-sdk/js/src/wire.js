// Socket.IO arguments across the contract: a JSON array whose binary values (at any
// depth) are `{"_placeholder":true,"num":N}` pointing into the attachments, as
// socket.io-parser does it. Binary arrives as `Uint8Array`; any `ArrayBuffer` or
// view (`Uint8Array`, `DataView`, a Node `Buffer`) may be sent.

/** Is `value` a placeholder socket.io-parser would reconstruct? */
function isPlaceholder(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    value._placeholder === true &&
    Number.isInteger(value.num)
  );
}

/** The contract's `args` record as JS values, binary as `Uint8Array`. */
export function decode(args) {
  const { attachments } = args;
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

/** JS values (an array of arguments) as the contract's `args` record. */
export function encode(values) {
  const attachments = [];
  const json = JSON.stringify(values, (_key, value) => {
    const bytes = bytesOf(value);
    if (bytes === undefined) return value;
    attachments.push(bytes);
    return { _placeholder: true, num: attachments.length - 1 };
  });
  return { json, attachments };
}
