// `TextEncoder` and `TextDecoder` (UTF-8) where the engine has none (QuickJS): the
// SDK's storage keeps values as UTF-8 JSON, and tenant code expects them.

/** `text` as UTF-8; a lone surrogate becomes U+FFFD, as `TextEncoder` does. */
function encodeUtf8(text) {
  const bytes = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdfff) {
      const low = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (code <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      } else {
        code = 0xfffd;
      }
    }
    if (code < 0x80) bytes.push(code);
    else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    else if (code < 0x10000) bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    else {
      bytes.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 0x3f), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    }
  }
  return new Uint8Array(bytes);
}

/** UTF-8 `bytes` as text; what is not UTF-8 becomes U+FFFD (or throws, if `fatal`). */
function decodeUtf8(bytes, fatal) {
  // Code points gathered, then made text a chunk at a time (adding to a string one
  // character at a time would copy it each time).
  const parts = [];
  let codes = [];
  const put = (code) => {
    codes.push(code);
    if (codes.length === 4096) {
      parts.push(String.fromCodePoint(...codes));
      codes = [];
    }
  };
  let i = 0;
  const invalid = () => {
    if (fatal) throw new TypeError("The encoded data was not valid for encoding utf-8");
    put(0xfffd);
  };
  while (i < bytes.length) {
    const first = bytes[i];
    if (first < 0x80) {
      put(first);
      i++;
      continue;
    }
    // The sequence's length and the range its second byte must be in (no overlong
    // forms, no surrogates, nothing past U+10FFFF).
    let length;
    let low = 0x80;
    let high = 0xbf;
    if (first >= 0xc2 && first <= 0xdf) length = 2;
    else if (first >= 0xe0 && first <= 0xef) {
      length = 3;
      if (first === 0xe0) low = 0xa0;
      if (first === 0xed) high = 0x9f;
    } else if (first >= 0xf0 && first <= 0xf4) {
      length = 4;
      if (first === 0xf0) low = 0x90;
      if (first === 0xf4) high = 0x8f;
    } else {
      invalid();
      i++;
      continue;
    }
    let code = first & (0xff >> (length + 1));
    let taken = 1;
    for (; taken < length; taken++) {
      const byte = bytes[i + taken];
      if (byte === undefined || byte < low || byte > high) break;
      code = (code << 6) | (byte & 0x3f);
      low = 0x80;
      high = 0xbf;
    }
    i += taken;
    if (taken < length) invalid();
    else put(code);
  }
  parts.push(String.fromCodePoint(...codes));
  return parts.join("");
}

/** A `BufferSource` as bytes. */
function bytesOf(input) {
  if (input === undefined) return new Uint8Array(0);
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError("TextDecoder.decode takes an ArrayBuffer or a view of one");
}

class TextEncoder {
  get encoding() {
    return "utf-8";
  }

  encode(text = "") {
    return encodeUtf8(String(text));
  }
}

class TextDecoder {
  #fatal;
  #ignoreBOM;

  constructor(label = "utf-8", options = {}) {
    if (!["utf-8", "utf8", "unicode-1-1-utf-8"].includes(String(label).trim().toLowerCase())) {
      throw new RangeError(`TextDecoder: only utf-8 is supported, not ${label}`);
    }
    this.#fatal = Boolean(options.fatal);
    this.#ignoreBOM = Boolean(options.ignoreBOM);
  }

  get encoding() {
    return "utf-8";
  }

  decode(input) {
    let bytes = bytesOf(input);
    if (!this.#ignoreBOM && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    return decodeUtf8(bytes, this.#fatal);
  }
}

globalThis.TextEncoder ??= TextEncoder;
globalThis.TextDecoder ??= TextDecoder;
