// What the bindings throw for a contract's `result` error, as an `Error` with a message.

/** The message inside a binding's error payload (a string or a `{tag, val}` variant). */
function messageOf(payload) {
  if (typeof payload === "string") return payload;
  if (payload && typeof payload === "object") {
    if (typeof payload.val === "string") return payload.val;
    if (payload.tag === "no-such-store") return "no such store";
    if (payload.tag === "access-denied") return "access denied";
    if (typeof payload.message === "string") return payload.message;
  }
  return String(payload);
}

/** `thrown` (what a binding threw) as an `Error` whose message says why. */
export function errorOf(thrown, fallback = "refused") {
  const payload = thrown && typeof thrown === "object" && "payload" in thrown ? thrown.payload : thrown;
  const message = messageOf(payload);
  return new Error(message || fallback);
}
