// The nsbox console: the admin API, looked at. Everything a tenant controls (names, log
// lines, keys, values, errors) reaches the page as text nodes, never as markup; the
// page's policy allows no inline script besides.
"use strict";

const TOKEN_KEY = "nsbox-console-token";
const PAGE_SIZE = 50;
const LOG_ROWS = 500;
const KV_PAGE = 50;
/** The most of a stored value shown. */
const VALUE_CHARS = 500;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(String(c ?? "")))));
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY);
let me = null;

/** One admin API call with the session's token; JSON in and out. */
async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    if (res.status === 401 && me) signOut("Signed out: the token is no longer accepted.");
    throw new ApiError(res.status, data?.error?.code ?? `http_${res.status}`, data?.error?.message ?? text);
  }
  return data;
}

const tenantPath = (name) => `/v1/tenants/${encodeURIComponent(name)}`;
const when = (ms) => (ms ? new Date(ms).toLocaleString() : "–");
const bytes = (n) => (n == null ? "–" : n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`);
const stateOf = (t) => (t.quarantined ? "quarantined" : t.running ? "running" : t.evictions > 0 ? "evicted" : "idle");

// ---- Signing in and out -------------------------------------------------------------

async function signIn(given) {
  token = given;
  try {
    me = await api("GET", "/v1/whoami");
  } catch (error) {
    token = null;
    me = null;
    throw error;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("who").textContent = me.access === "operator" ? "operator" : `tenant ${me.tenant}`;
  $("signout").hidden = false;
  for (const node of document.querySelectorAll(".operator-only")) node.hidden = me.access !== "operator";
}

function signOut(why = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  me = null;
  $("who").textContent = "";
  $("signout").hidden = true;
  $("signin-error").textContent = why;
  location.hash = "#/";
  route();
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.token;
  $("signin-error").textContent = "";
  try {
    await signIn(input.value.trim());
    input.value = "";
    route();
  } catch (error) {
    $("signin-error").textContent = error instanceof ApiError ? error.message : `The server could not be reached: ${error.message}`;
  }
});
$("signout").addEventListener("click", () => signOut());

// ---- Views --------------------------------------------------------------------------

/** What the shown view stops when another is shown (timers, the followed log). */
let leave = () => {};

function show(view) {
  leave();
  leave = () => {};
  for (const id of ["signin-view", "list-view", "tenant-view"]) $(id).hidden = id !== view;
}

function route() {
  if (!me) return show("signin-view");
  const match = location.hash.match(/^#\/tenants\/([A-Za-z0-9_]{1,64})$/);
  if (match) return showTenant(match[1]);
  showList();
}
window.addEventListener("hashchange", route);

// ---- Charts from /metrics -------------------------------------------------------------

const SAMPLE_MS = 2000;
const SPAN_MS = 5 * 60 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";

/** Prometheus text: each sample by its name and labels. */
function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split("\n")) {
    const match = line.match(/^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/);
    if (match) values.set(match[1] + (match[2] ?? ""), Number(match[3]));
  }
  return values;
}

/** The sum of a metric over its labels (every tenant, or the one asked for). */
function total(values, name) {
  let sum = 0;
  for (const [key, value] of values) if (key === name || key.startsWith(`${name}{`)) sum += value;
  return sum;
}

/** A histogram's cumulative buckets, summed over tenants: [[upper bound, count]]. */
function buckets(values, name) {
  const byBound = new Map();
  for (const [key, value] of values) {
    if (!key.startsWith(`${name}_bucket{`)) continue;
    const le = key.match(/le="([^"]+)"/)?.[1];
    byBound.set(le, (byBound.get(le) ?? 0) + value);
  }
  return [...byBound].map(([le, n]) => [le === "+Inf" ? Infinity : Number(le), n]).sort((a, b) => a[0] - b[0]);
}

/** The `q` quantile of what a histogram counted between two samples (interpolated in a bucket). */
function quantile(q, now, before) {
  const counts = now.map(([le, n], i) => [le, n - (before[i]?.[1] ?? 0)]);
  const all = counts.at(-1)?.[1] ?? 0;
  if (all <= 0) return null;
  const rank = q * all;
  let [lower, below] = [0, 0];
  for (const [le, n] of counts) {
    if (n >= rank) return le === Infinity ? lower : lower + (le - lower) * ((rank - below) / Math.max(n - below, 1e-9));
    [lower, below] = [le, n];
  }
  return lower;
}

const CHARTS = [
  { id: "events", title: "Events per second", unit: "/s", lines: [["in", "#2563eb", "nsbox_tenant_events_in_total", "rate"], ["out", "#16a34a", "nsbox_tenant_events_out_total", "rate"]] },
  { id: "bytes", title: "Bytes per second", unit: "B/s", lines: [["in", "#2563eb", "nsbox_tenant_bytes_in_total", "rate"], ["out", "#16a34a", "nsbox_tenant_bytes_out_total", "rate"]] },
  { id: "cpu", title: "CPU per call", unit: "µs", lines: [["p50", "#9333ea", "nsbox_tenant_call_cpu_seconds", 0.5], ["p99", "#dc2626", "nsbox_tenant_call_cpu_seconds", 0.99]] },
  { id: "sockets", title: "Sockets", unit: "", lines: [["sockets", "#ea580c", "nsbox_tenant_sockets", "gauge"]] },
];

const number = (v) => (v == null ? "–" : v >= 100 ? Math.round(v).toLocaleString() : Number(v.toPrecision(3)).toString());

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

/** Draws one chart: a line for each series over the last SPAN_MS. */
function draw(figure, chart, series, now) {
  const [width, height, pad] = [300, 100, 4];
  const max = Math.max(1e-9, ...series.flatMap((points) => points.map(([, v]) => v ?? 0)));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": chart.title });
  root.append(svg("rect", { x: 0, y: 0, width, height, fill: "#fafbfc", stroke: "#e3e5ea" }));
  chart.lines.forEach(([, color], i) => {
    const points = series[i]
      .filter(([, v]) => v != null)
      .map(([t, v]) => `${(width - ((now - t) / SPAN_MS) * width).toFixed(1)},${(height - pad - (v / max) * (height - 2 * pad)).toFixed(1)}`);
    root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 1.5 }));
  });
  const latest = chart.lines.map(([label], i) => `${label} ${number(series[i].at(-1)?.[1])}`).join(", ");
  figure.replaceChildren(el("figcaption", {}, `${chart.title}: ${latest} ${chart.unit}`), root);
  chart.lines.forEach(([label], i) => (figure.dataset[label] = String(series[i].at(-1)?.[1] ?? "")));
}

/**
 * Samples `/metrics` (all tenants, or `tenant`'s) every SAMPLE_MS into `box`'s charts,
 * and reports each limit trip to `onTrip(limit, count)`; returns what stops it.
 */
function startCharts(box, tenant, onTrip = () => {}) {
  const url = tenant ? `/metrics?tenant=${encodeURIComponent(tenant)}` : "/metrics";
  const figures = CHARTS.map((chart) => el("figure", { "data-chart": chart.id }));
  box.replaceChildren(...figures);
  const series = CHARTS.map((chart) => chart.lines.map(() => []));
  let previous = null;
  const sample = async () => {
    const res = await fetch(url);
    if (!res.ok) return;
    const values = parseMetrics(await res.text());
    const at = Date.now();
    if (previous) {
      const seconds = (at - previous.at) / 1000;
      CHARTS.forEach((chart, c) =>
        chart.lines.forEach(([, , metric, kind], l) => {
          let v;
          if (kind === "rate") v = Math.max(0, total(values, metric) - total(previous.values, metric)) / seconds;
          else if (kind === "gauge") v = total(values, metric);
          else {
            const q = quantile(kind, buckets(values, metric), buckets(previous.values, metric));
            v = q == null ? null : q * 1e6;
          }
          const points = series[c][l];
          points.push([at, v]);
          while (points.length && points[0][0] < at - SPAN_MS) points.shift();
        }),
      );
      for (const [key, value] of values) {
        const limit = key.startsWith("nsbox_tenant_limit_trips_total{") && key.match(/limit="([^"]+)"/)?.[1];
        const before = previous.values.get(key) ?? 0;
        if (limit && value > before) onTrip(limit, value - before);
      }
      CHARTS.forEach((chart, c) => draw(figures[c], chart, series[c], at));
    }
    previous = { at, values };
  };
  sample().catch(() => {});
  const timer = setInterval(() => sample().catch(() => {}), SAMPLE_MS);
  return () => clearInterval(timer);
}

// ---- The tenant list ----------------------------------------------------------------

const list = { q: "", sort: "name", order: "asc", offset: 0 };

async function loadList() {
  const query = new URLSearchParams({ q: list.q, sort: list.sort, order: list.order, offset: list.offset, limit: PAGE_SIZE });
  try {
    const page = await api("GET", `/v1/tenants?${query}`);
    $("list-error").textContent = "";
    $("tenants").tBodies[0].replaceChildren(
      ...page.tenants.map((t) =>
        el("tr", { "data-tenant": t.name },
          el("td", {}, el("a", { href: `#/tenants/${t.name}` }, t.name)),
          el("td", {}, t.namespace ?? t.namespace_pattern ?? ""),
          el("td", {}, t.version),
          el("td", {}, t.contract),
          el("td", {}, t.sockets),
          el("td", {}, t.instances),
          el("td", { class: `state-${stateOf(t)}` }, stateOf(t)),
          el("td", {}, t.faults),
          el("td", {}, t.restarts),
        ),
      ),
    );
    const last = list.offset + page.tenants.length;
    $("page").textContent = page.total ? `${list.offset + 1}–${last} of ${page.total}` : "no tenants";
    $("prev").disabled = list.offset === 0;
    $("next").disabled = page.next_offset == null;
    for (const button of document.querySelectorAll("#tenants th button")) {
      if (button.dataset.sort === list.sort) button.setAttribute("aria-sort", list.order === "asc" ? "ascending" : "descending");
      else button.removeAttribute("aria-sort");
    }
  } catch (error) {
    $("list-error").textContent = error.message;
  }
}

function showList() {
  show("list-view");
  loadList();
  const timer = setInterval(loadList, 3000);
  const stopCharts = me.access === "operator" ? startCharts($("host-charts"), null) : () => {};
  leave = () => {
    clearInterval(timer);
    stopCharts();
  };
}

let searching;
$("search").addEventListener("input", (event) => {
  clearTimeout(searching);
  searching = setTimeout(() => {
    list.q = event.target.value.trim();
    list.offset = 0;
    loadList();
  }, 150);
});
for (const button of document.querySelectorAll("#tenants th button")) {
  button.addEventListener("click", () => {
    const sort = button.dataset.sort;
    list.order = list.sort === sort && list.order === "asc" ? "desc" : "asc";
    list.sort = sort;
    list.offset = 0;
    loadList();
  });
}
$("prev").addEventListener("click", () => {
  list.offset = Math.max(0, list.offset - PAGE_SIZE);
  loadList();
});
$("next").addEventListener("click", () => {
  list.offset += PAGE_SIZE;
  loadList();
});
$("open-tenant").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = `#/tenants/${event.target.elements.name.value.trim()}`;
});

// ---- A tenant -----------------------------------------------------------------------

let tenant = null;

function pairs(dl, entries) {
  dl.replaceChildren(...entries.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
}

async function loadTenant() {
  const name = tenant;
  let info;
  try {
    info = await api("GET", tenantPath(name));
  } catch (error) {
    if (error.code !== "no_such_tenant") throw error;
    $("tenant-missing").hidden = false;
    for (const id of ["summary", "config", "limits"]) $(id).replaceChildren();
    for (const id of ["versions", "kv"]) $(id).tBodies[0].replaceChildren();
    return;
  }
  if (name !== tenant) return;
  $("tenant-missing").hidden = true;
  pairs($("summary"), [
    ["namespace", info.namespace ?? info.namespace_pattern ?? ""],
    ["live version", info.version],
    ["contract", info.contract],
    ["SHA-256", info.sha256 ?? "(from the configuration)"],
    ["uploaded", when(info.uploaded_at_ms)],
    ["state", stateOf(info)],
    ["sockets", info.sockets],
    ["instances", info.instances],
    ["events", info.events],
    ["faults", info.faults],
    ["restarts", info.restarts],
    ["memory", bytes(info.memory_bytes)],
    ["limits tripped", Object.entries(info.limit_trips).filter(([, n]) => n > 0).map(([k, n]) => `${k} ×${n}`).join(", ") || "none"],
  ]);
  pairs($("limits"), Object.entries(info.limits).map(([k, v]) => [k in (info.limit_overrides ?? {}) ? `${k} (own)` : k, v]));
  const ownLimits = $("own-limits");
  if (document.activeElement !== ownLimits && !ownLimits.dataset.edited) ownLimits.value = JSON.stringify(info.limit_overrides ?? {});
  const versions = await api("GET", `${tenantPath(name)}/versions`).catch(() => null);
  $("versions").tBodies[0].replaceChildren(
    ...(versions?.versions ?? [])
      .slice()
      .reverse()
      .map((v) =>
        el("tr", { "data-version": v.version },
          el("td", {}, v.version),
          el("td", {}, when(v.uploaded_at_ms)),
          el("td", {}, v.contract),
          el("td", {}, bytes(v.size)),
          el("td", { title: v.sha256 }, v.sha256.slice(0, 12)),
          el("td", {},
            v.version === versions.current
              ? el("span", { class: "live" }, "live")
              : el("button", { type: "button", onclick: () => rollback(v.version) }, "Roll back to this")),
        ),
      ),
  );
}

/**
 * The tenant's configuration and storage: read when its page opens, after a change
 * and on asking (not with every refresh: a page of values may be megabytes).
 */
async function loadData() {
  const name = tenant;
  const [config, kv] = await Promise.all([
    api("GET", `${tenantPath(name)}/config`).catch(() => null),
    api("GET", `${tenantPath(name)}/kv?values=1&limit=${KV_PAGE}`).catch(() => null),
  ]);
  if (name !== tenant) return;
  pairs($("config"), [
    ...Object.entries(config?.config ?? {}),
    ...Object.entries(config?.secrets ?? {}).map(([k, v]) => [`${k} (secret)`, v]),
  ]);
  const shown = (text) => (text.length > VALUE_CHARS ? `${text.slice(0, VALUE_CHARS)}…` : text);
  $("kv").tBodies[0].replaceChildren(
    ...(kv?.keys ?? []).map((entry) =>
      el("tr", {}, el("td", {}, entry.key), el("td", {}, entry.value != null ? shown(entry.value) : `(base64) ${shown(entry.base64 ?? "")}`)),
    ),
  );
}

async function rollback(version) {
  $("tenant-error").textContent = "";
  try {
    await api("POST", `${tenantPath(tenant)}/rollback`, { version });
    await loadTenant();
  } catch (error) {
    $("tenant-error").textContent = error.message;
  }
}

/** Uploads `file` as the tenant's next version, showing the upload's progress. */
function deploy(file) {
  const status = $("deploy-status");
  const progress = $("progress");
  status.textContent = `Uploading ${file.name}…`;
  status.className = "";
  progress.hidden = false;
  progress.value = 0;
  const request = new XMLHttpRequest();
  request.open("PUT", `${tenantPath(tenant)}/component`);
  request.setRequestHeader("authorization", `Bearer ${token}`);
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) progress.value = event.loaded / event.total;
  });
  request.upload.addEventListener("load", () => (status.textContent = "Validating and compiling…"));
  request.addEventListener("load", () => {
    progress.hidden = true;
    let body = null;
    try {
      body = JSON.parse(request.responseText);
    } catch {
      body = null;
    }
    if (request.status >= 200 && request.status < 300) {
      const created = !$("tenant-missing").hidden;
      if (created) showTenant(tenant);
      status.textContent = body?.unchanged ? `Unchanged: version ${body.version} is these bytes.` : `Version ${body?.version} is live.`;
      if (!created) loadTenant();
    } else {
      status.className = "error";
      status.textContent = `${body?.error?.code ?? `http_${request.status}`}: ${body?.error?.message ?? request.responseText}`;
    }
  });
  request.addEventListener("error", () => {
    progress.hidden = true;
    status.className = "error";
    status.textContent = "The upload failed: the server could not be reached.";
  });
  request.send(file);
}

$("component").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) deploy(file);
  event.target.value = "";
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const [file] = event.dataTransfer.files;
  if (file) deploy(file);
});

/** Follows the tenant's log (server-sent events over fetch, which can send the token). */
function followLog(name, signal) {
  const box = $("log");
  box.replaceChildren();
  const add = (line) => {
    const stick = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(el("div", { class: line.level, "data-seq": line.seq }, `${new Date(line.time_ms).toLocaleTimeString()} ${line.level} ${line.source}: ${line.message}`));
    while (box.childElementCount > LOG_ROWS) box.firstElementChild.remove();
    if (stick) box.scrollTop = box.scrollHeight;
  };
  (async () => {
    $("log-state").textContent = "(following)";
    const res = await fetch(`${tenantPath(name)}/logs?follow=1`, { headers: { authorization: `Bearer ${token}` }, signal });
    if (!res.ok) throw new Error(`the log answered ${res.status}`);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) add(JSON.parse(data));
      }
    }
    $("log-state").textContent = "(ended)";
  })().catch((error) => {
    if (!signal.aborted) $("log-state").textContent = `(stopped: ${error.message})`;
  });
}

function showTenant(name) {
  show("tenant-view");
  tenant = name;
  $("tenant-name").textContent = name;
  for (const id of ["deploy-status", "tenant-error", "config-status", "manage-status"]) $(id).textContent = "";
  $("minted").hidden = true;
  $("minted").value = "";
  delete $("own-limits").dataset.edited;
  $("trips").replaceChildren(el("li", { class: "muted" }, "none since this page opened"));
  let tripped = false;
  const stopCharts = startCharts($("tenant-charts"), name, (limit, count) => {
    if (!tripped) $("trips").replaceChildren();
    tripped = true;
    $("trips").prepend(el("li", { "data-limit": limit }, `${new Date().toLocaleTimeString()} ${limit} ×${count}`));
  });
  const refresh = () => loadTenant().catch((error) => ($("tenant-error").textContent = error.message));
  refresh();
  loadData();
  const timer = setInterval(refresh, 3000);
  const following = new AbortController();
  followLog(name, following.signal);
  leave = () => {
    clearInterval(timer);
    following.abort();
    stopCharts();
  };
}

// ---- Changing a tenant --------------------------------------------------------------

/** Runs `request`, then shows `done` (or the API's error) in `status` and reloads the tenant. */
async function change(status, request, done) {
  status.className = "";
  status.textContent = "";
  try {
    const result = await request();
    status.textContent = typeof done === "function" ? done(result) : done;
    await Promise.all([loadTenant(), loadData()]);
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  }
}

$("config-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { name, value, secret } = event.target.elements;
  const body = secret.checked ? { secrets: { [name.value]: value.value } } : { config: { [name.value]: value.value } };
  change($("config-status"), () => api("PUT", `${tenantPath(tenant)}/config`, body), `Set ${name.value}.`);
});
$("config-unset").addEventListener("click", () => {
  const { name, secret } = $("config-form").elements;
  const body = secret.checked ? { secrets: { [name.value]: null } } : { config: { [name.value]: null } };
  change($("config-status"), () => api("PUT", `${tenantPath(tenant)}/config`, body), `Unset ${name.value}.`);
});
$("own-limits").addEventListener("input", (event) => (event.target.dataset.edited = "1"));
$("limits-form").addEventListener("submit", (event) => {
  event.preventDefault();
  let limits;
  try {
    limits = JSON.parse($("own-limits").value || "{}");
  } catch (error) {
    $("manage-status").className = "error";
    $("manage-status").textContent = `Not JSON: ${error.message}`;
    return;
  }
  change($("manage-status"), async () => {
    await api("PUT", `${tenantPath(tenant)}/limits`, limits);
    delete $("own-limits").dataset.edited;
  }, "Limits saved: a fresh instance takes the sockets over.");
});
$("mint").addEventListener("click", () =>
  change($("manage-status"), () => api("POST", `${tenantPath(tenant)}/tokens`), (minted) => {
    $("minted").value = minted.token;
    $("minted").hidden = false;
    return "A new deploy token, shown this once: copy it now.";
  }),
);
$("delete").addEventListener("click", async () => {
  const name = tenant;
  if (!confirm(`Delete tenant ${name}? Its sockets are disconnected and its versions, configuration, storage and tokens removed.`)) return;
  try {
    await api("DELETE", tenantPath(name));
    location.hash = "#/";
  } catch (error) {
    $("manage-status").className = "error";
    $("manage-status").textContent = error.message;
  }
});

// ---- Start --------------------------------------------------------------------------

(async () => {
  if (token) {
    try {
      await signIn(token);
    } catch {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  }
  route();
})();
$("kv-reload").addEventListener("click", () => loadData());
