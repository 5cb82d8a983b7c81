// The tenant's log (`host.log`), and `console` pointed at it: the host tags every line
// with the tenant's name and bounds its length.
import { log as hostLog } from "nsbox:tenant/host@0.2.3";
import { sourceStack } from "./stack.js";

/** A value as a log line shows it. */
function show(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ? `${value}\n${sourceStack(value.stack)}` : String(value);
  try {
    const text = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v));
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

/** Writes `values` as one line at `level` (`trace`, `debug`, `info`, `warn`, `error`). */
export function log(level, ...values) {
  hostLog(level, values.map(show).join(" "));
}

export const logger = {
  trace: (...v) => log("trace", ...v),
  debug: (...v) => log("debug", ...v),
  info: (...v) => log("info", ...v),
  warn: (...v) => log("warn", ...v),
  error: (...v) => log("error", ...v),
};

globalThis.console = { ...logger, log: logger.info };
