// An error's stack in the tenant's own files: the build appends where each line of the
// bundle came from (the source map's `sources` and `mappings`), and a stack's
// `tenant:LINE:COLUMN` frames are shown as `FILE:LINE:COLUMN` of the source.
const MAP = Symbol.for("nsbox.sourceMap");
const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** The decoded mappings: per line of the bundle, `[column, source, line, column]` runs. */
let lines;

/** The numbers of one segment (base64 VLQ). */
function numbers(segment) {
  const values = [];
  let value = 0;
  let shift = 0;
  for (let i = 0; i < segment.length; i++) {
    const digit = BASE64.indexOf(segment[i]);
    value += (digit & 31) * 2 ** shift;
    if (digit & 32) shift += 5;
    else {
      values.push(value % 2 === 1 ? -(value - 1) / 2 : value / 2);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

function decode(mappings) {
  const decoded = [];
  let [source, line, column] = [0, 0, 0];
  for (const text of mappings.split(";")) {
    const runs = [];
    let at = 0;
    for (const segment of text === "" ? [] : text.split(",")) {
      const [dColumn, dSource, dLine, dSourceColumn] = numbers(segment);
      at += dColumn;
      if (dSource === undefined) continue;
      source += dSource;
      line += dLine;
      column += dSourceColumn;
      runs.push(at, source, line, column);
    }
    decoded.push(runs);
  }
  return decoded;
}

/** `FILE:LINE:COLUMN` of the source for a 1-based line and column of the bundle. */
function original(map, line, column) {
  lines ??= decode(map.mappings);
  const runs = lines[line - 1];
  if (runs === undefined || runs.length === 0) return undefined;
  let found = 0;
  for (let i = 0; i < runs.length && runs[i] <= column - 1; i += 4) found = i;
  return `${map.sources[runs[found + 1]]}:${runs[found + 2] + 1}:${runs[found + 3] + 1}`;
}

/** `stack` with its frames in the bundle shown in the source. */
export function sourceStack(stack) {
  const map = globalThis[MAP];
  if (map === undefined || typeof stack !== "string") return stack;
  return stack.replace(/\btenant:(\d+)(?::(\d+))?/g, (frame, line, column) => original(map, +line, +(column ?? 1)) ?? frame);
}
