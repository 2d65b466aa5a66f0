// The thrifty dashboard: reads the ledger's admin routes with the admin key (kept in
// sessionStorage, or given once as #key=... in the address) and draws them; no library.
"use strict";

const STORE = "thrifty-admin-key";
const HITS = ["exact_hit", "semantic_hit", "coalesced"];
const $ = (id) => document.getElementById(id);

function usd(x) { return "$" + x.toFixed(x >= 100 ? 2 : 6); }

function setFigure(id, value, text) {
  const el = $(id);
  el.dataset.value = String(value);
  el.textContent = text;
}

function table(id, groups) {
  const head = "<tr><th></th><th>requests</th><th>spent $</th><th>baseline $</th>" +
    "<th>saved $</th><th>mean ms</th><th>wrong hits</th></tr>";
  const rows = Object.entries(groups).map(([name, t]) =>
    `<tr data-group="${name}" data-requests="${t.requests}" data-cost="${t.cost_usd}" ` +
    `data-saved="${t.saved_usd}"><td>${name}</td><td>${t.requests}</td>` +
    `<td>${t.cost_usd.toFixed(6)}</td><td>${t.baseline_cost_usd.toFixed(6)}</td>` +
    `<td>${t.saved_usd.toFixed(6)}</td><td>${t.latency_ms_mean.toFixed(1)}</td>` +
    `<td>${t.wrong_hits}</td></tr>`);
  $(id).innerHTML = head + rows.join("");
}

function chart(points) {
  // one stacked bar per hour: spent (grey) + saved (green); request count on top
  const buckets = {};
  for (const p of points) {
    const b = buckets[p.start] || (buckets[p.start] = { spent: 0, saved: 0, requests: 0 });
    b.spent += p.cost_usd; b.saved += p.saved_usd; b.requests += p.requests;
  }
  const keys = Object.keys(buckets).sort();
  const w = 900, h = 220, pad = 30;
  const top = Math.max(1e-12, ...keys.map((k) => buckets[k].spent + Math.max(0, buckets[k].saved)));
  const bw = Math.max(4, Math.min(60, (w - 2 * pad) / Math.max(1, keys.length) - 4));
  let svg = `<svg id="series" width="${w}" height="${h + 40}" role="img">`;
  keys.forEach((k, i) => {
    const b = buckets[k], x = pad + i * (bw + 4);
    const hs = (b.spent / top) * h, hv = (Math.max(0, b.saved) / top) * h;
    svg += `<rect x="${x}" y="${h - hs}" width="${bw}" height="${hs}" fill="#8895a7"></rect>`;
    svg += `<rect x="${x}" y="${h - hs - hv}" width="${bw}" height="${hv}" fill="#2e9e5b"></rect>`;
    svg += `<text x="${x}" y="${h - hs - hv - 3}">${b.requests}</text>`;
    svg += `<text x="${x}" y="${h + 14}">${k.slice(5, 13)}h</text>`;
  });
  svg += `<text x="${pad}" y="${h + 32}">grey: spent, green: saved, number: requests</text></svg>`;
  $("chart").innerHTML = svg;
}

async function get(path, key) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + key } });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const error = new Error((body.error && body.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

async function load(key) {
  $("status").textContent = "loading…";
  try {
    const [summary, series, latency] = await Promise.all([
      get("/admin/ledger/summary", key), get("/admin/ledger/series?bucket=hour", key),
      get("/admin/dashboard/latency", key)]);
    const t = summary.totals;
    const hits = HITS.reduce((n, m) => n + ((summary.by_mechanism[m] || {}).requests || 0), 0);
    const rate = t.requests ? hits / t.requests : 0;
    setFigure("requests", t.requests, t.requests.toLocaleString("en"));
    setFigure("spent", t.cost_usd, usd(t.cost_usd));
    setFigure("baseline", t.baseline_cost_usd, usd(t.baseline_cost_usd));
    setFigure("saved", t.saved_usd, usd(t.saved_usd));
    setFigure("hit-rate", rate, (100 * rate).toFixed(1) + " %");
    setFigure("wrong-hits", t.wrong_hits, String(t.wrong_hits));
    setFigure("latency", t.latency_ms_mean, t.latency_ms_mean.toFixed(1) + " ms");
    for (const q of ["p50", "p95", "p99"]) {
      setFigure("latency-" + q, latency.latency_ms[q], latency.latency_ms[q].toFixed(1));
    }
    const errors = Object.values(latency.errors_by_status).reduce((a, b) => a + b, 0);
    setFigure("errors", errors, String(errors));
    $("latency-by-mechanism").innerHTML = "<tr><th></th><th>p50</th><th>p95</th><th>p99</th></tr>" +
      Object.entries(latency.latency_ms_by_mechanism).map(([m, p]) =>
        `<tr data-group="${m}" data-p95="${p.p95}"><td>${m}</td><td>${p.p50.toFixed(1)}</td>` +
        `<td>${p.p95.toFixed(1)}</td><td>${p.p99.toFixed(1)}</td></tr>`).join("");
    table("by-mechanism", summary.by_mechanism);
    table("by-tenant", summary.by_tenant);
    table("by-model", summary.by_model);
    chart(series.points);
    $("login").hidden = true;
    $("board").hidden = false;
    $("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      sessionStorage.removeItem(STORE);
      $("login-error").textContent = error.message;
      $("login").hidden = false;
      $("board").hidden = true;
    }
    $("status").textContent = "error: " + error.message;
    document.body.dataset.loaded = "error";
  }
}

function start() {
  const match = location.hash.match(/key=([^&]+)/);
  if (match) {
    sessionStorage.setItem(STORE, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);  // the key leaves the address bar
  }
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(STORE, $("key").value);
    load($("key").value);
  });
  const key = sessionStorage.getItem(STORE);
  if (key) {
    load(key);
    setInterval(() => load(sessionStorage.getItem(STORE) || ""), 30000);
  } else {
    $("login").hidden = false;
  }
}

start();
