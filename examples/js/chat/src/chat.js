// The `chat` tenant in JavaScript: the same events, the same answers as the Rust one
// (examples/chat/src/lib.rs lists them).
//
// History is kept in the tenant's storage (`history/<channel>`, the last 50): it
// survives evictions, faults, new versions and host restarts. Members and nicknames
// are the connected sockets' and live in the instance's memory.
import { io, storage } from "@nsbox/guest";

const HISTORY = 50;
const MAX_TEXT = 2000;
const LOBBY = "#general";

/** Nicknames by socket id. */
const nicknames = new Map();
/** Channels by name: the ids of their members. */
const channels = new Map();

const ackOf = (args) => (typeof args[args.length - 1] === "function" ? args.pop() : () => {});
const str = (value) => (typeof value === "string" ? value : "");
const chars = (text) => [...text].length;

/** A channel's last messages, oldest first. */
function history(channel) {
  try {
    return storage.get(`history/${channel}`) ?? [];
  } catch {
    return [];
  }
}

/** Adds a message to its channel's history, keeping the last `HISTORY`. */
function remember(channel, message) {
  const kept = [...history(channel), message].slice(-HISTORY);
  try {
    storage.set(`history/${channel}`, kept);
  } catch (error) {
    console.warn(`history of ${channel} not kept: ${error.message}`);
  }
}

const members = (channel) => [...(channels.get(channel) ?? [])].map((id) => nicknames.get(id)).filter(Boolean);
const isMember = (channel, socket) => channels.get(channel)?.has(socket.id) ?? false;

function join(socket, channel) {
  socket.join(channel);
  if (!channels.has(channel)) channels.set(channel, new Set());
  channels.get(channel).add(socket.id);
  socket.to(channel).emit("joined", { channel, nickname: socket.data.nickname });
  return { channel, members: members(channel), history: history(channel) };
}

function leave(socket, channel) {
  const wasMember = channels.get(channel)?.delete(socket.id) ?? false;
  if (channels.get(channel)?.size === 0 && channel !== LOBBY) channels.delete(channel);
  socket.leave(channel);
  if (wasMember) io.to(channel).emit("left", { channel, nickname: socket.data.nickname });
}

const validChannel = (name) => name.startsWith("#") && chars(name) >= 2 && chars(name) <= 32;

io.use((socket, next) => {
  const given = socket.handshake.auth.nickname;
  if (typeof given !== "string") return next(new Error("nickname required"));
  const nickname = given.trim();
  if (nickname.length === 0 || chars(nickname) > 32) {
    const error = new Error("nickname required");
    error.data = { reason: "1 to 32 characters" };
    return next(error);
  }
  if ([...nicknames.values()].includes(nickname)) {
    const error = new Error("nickname taken");
    error.data = { nickname };
    return next(error);
  }
  nicknames.set(socket.id, nickname);
  socket.data.nickname = nickname;
  // Registered here, not on connection: a client gone before it connected frees its nickname too.
  socket.on("disconnect", () => {
    for (const [channel, ids] of channels) if (ids.has(socket.id)) leave(socket, channel);
    nicknames.delete(socket.id);
  });
  next();
});

io.on("connection", (socket) => {
  join(socket, LOBBY);
  socket.emit("welcome", { nickname: socket.data.nickname, channels: [...channels.keys()].sort() });

  socket.on("join", (...args) => {
    const ack = ackOf(args);
    const channel = str(args[0]);
    if (!validChannel(channel)) return ack({ error: "a channel is # and 1 to 31 characters" });
    ack(join(socket, channel));
  });
  socket.on("leave", (...args) => {
    const ack = ackOf(args);
    const channel = str(args[0]);
    leave(socket, channel);
    ack({ channel });
  });
  socket.on("message", (...args) => {
    const ack = ackOf(args);
    const channel = str(args[0]);
    const text = str(args[1]);
    if (!isMember(channel, socket)) return ack({ ok: false, error: "not a member" });
    if (text.trim().length === 0 || chars(text) > MAX_TEXT) return ack({ ok: false, error: "empty or too long" });
    const message = { channel, nickname: socket.data.nickname, text, at: Date.now() };
    remember(channel, message);
    io.to(channel).emit("message", message);
    ack({ ok: true });
  });
  socket.on("typing", (...args) => {
    ackOf(args);
    const channel = str(args[0]);
    if (isMember(channel, socket)) {
      socket.to(channel).emit("typing", { channel, nickname: socket.data.nickname, typing: args[1] === true });
    }
  });
  socket.on("poll", (...args) => {
    const ack = ackOf(args);
    const channel = str(args[0]);
    const question = str(args[1]);
    const wait = Number.isInteger(args[2]) && args[2] >= 0 ? Math.min(Math.max(args[2], 1), 10000) : 5000;
    if (!isMember(channel, socket)) return ack({ ok: false, error: "not a member" });
    const asked = { channel, nickname: socket.data.nickname, question };
    const sent = socket
      .to(channel)
      .timeout(wait)
      .emit("poll", asked, (error, answers) => ack({ ok: true, answers, complete: error === null }));
    if (!sent) ack({ ok: false, error: "the poll was refused" });
  });
  socket.on("members", (...args) => ackOf(args)(members(str(args[0]))));
  socket.on("history", (...args) => ackOf(args)(history(str(args[0]))));
  socket.on("channels", (...args) => {
    const ack = ackOf(args);
    ack([...channels.keys()].sort().map((channel) => ({ channel, members: channels.get(channel).size })));
  });
});
