// pglink's dashboard: each page polls the JSON API and redraws its parts.
"use strict";

const $ = (sel) => document.querySelector(sel);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({headers: {"Content-Type": "application/json"}, credentials: "same-origin"}, opts || {}));
  const body = (r.headers.get("Content-Type") || "").includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body && body.error ? body.error : r.status + " " + r.statusText);
  return body;
}

function bytes(n) {
  if (n == null) return "unknown";
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function secs(s) {
  if (s == null) return "unknown";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  return Math.round(s / 60) + " min";
}

const stateTag = (s) => `<span class="state state-${esc(s)}">${esc(s)}</span>`;
const tput = (l) => `${l.txn_per_sec.toFixed(1)} txn/s, ${l.rows_per_sec.toFixed(0)} rows/s`;

function seeding(l) {
  if (l.state !== "seeding") return l.seed_rows_copied ? `${l.seed_rows_copied} rows copied` : "";
  return `${l.seed_rows_copied} rows, ${bytes(l.seed_bytes_copied)}; ${l.seed_tables_left} tables left`;
}

function every(ms, fn) {
  const tick = async () => {
    try { await fn(); } catch (e) { console.error(e); }
    setTimeout(tick, ms);
  };
  tick();
}

// The overview: every link's row.
function overview() {
  every(1000, async () => {
    const data = await api("/api/links");
    for (const l of data.links) {
      const tr = document.querySelector(`tr[data-link="${CSS.escape(l.name)}"]`);
      if (!tr) { location.reload(); return; }
      tr.querySelector(".c-state").innerHTML = stateTag(l.state);
      tr.querySelector(".c-lag").textContent = secs(l.lag_seconds);
      tr.querySelector(".c-lagb").textContent = bytes(l.lag_bytes);
      tr.querySelector(".c-tput").textContent = tput(l);
      tr.querySelector(".c-seed").textContent = seeding(l);
    }
    $("#updated").textContent = "Last update " + new Date().toLocaleTimeString();
  });
}

// lagChart draws the samples as an SVG polyline, time on x, seconds on y.
function lagChart(samples) {
  const w = 600, h = 160, pad = 28;
  const pts = samples.filter((s) => s.lag_seconds != null);
  if (pts.length < 2) return `<p class="note">Not enough samples yet.</p>`;
  const t0 = Date.parse(pts[0].at), t1 = Date.parse(pts[pts.length - 1].at);
  const ymax = Math.max(1, ...pts.map((s) => s.lag_seconds));
  const x = (t) => pad + (w - 2 * pad) * (t1 > t0 ? (Date.parse(t) - t0) / (t1 - t0) : 0);
  const y = (v) => h - pad + (-(h - 2 * pad) * v) / ymax;
  const line = pts.map((s) => `${x(s.at).toFixed(1)},${y(s.lag_seconds).toFixed(1)}`).join(" ");
  return `<svg class="chart" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" aria-hidden="true">
    <line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#ccc"/>
    <text x="2" y="${pad}">${esc(secs(ymax))}</text><text x="2" y="${h - pad}">0</text>
    <text x="${pad}" y="${h - 8}">${esc(new Date(t0).toLocaleTimeString())}</text>
    <text x="${w - pad - 50}" y="${h - 8}">${esc(new Date(t1).toLocaleTimeString())}</text>
    <polyline points="${line}"/></svg>`;
}

function linkPage(name) {
  every(2000, async () => {
    const d = await api("/api/links/" + encodeURIComponent(name));
    const l = d.link, st = d.status || {};
    $("#l-state").innerHTML = stateTag(l.state);
    $("#l-lag").textContent = "Lag " + secs(l.lag_seconds) + " (" + bytes(l.lag_bytes) + " of WAL)";
    $("#l-tput").textContent = tput(l);
    $("#lag-chart").innerHTML = lagChart(d.lag);
    const err = st.last_error || l.last_error || d.status_error;
    $("#error-box").hidden = !err;
    $("#l-error").textContent = err || "";
    $("#l-remedy").textContent = st.remedy || "see pglink status";
    $("#tables tbody").innerHTML = d.tables.map((t) => `<tr><td>${esc(t.name)}</td><td>${stateTag(t.state)}</td>
      <td><div class="bar" role="progressbar" aria-label="${esc(t.name)}" aria-valuenow="${t.percent.toFixed(0)}" aria-valuemin="0" aria-valuemax="100"><span style="width:${t.percent}%"></span></div></td>
      <td class="num">${t.rows}</td><td class="num">${bytes(t.bytes)}</td><td class="num">${t.bytes_per_sec ? bytes(t.bytes_per_sec) + "/s" : ""}</td>
      <td class="num">${t.eta_seconds != null ? secs(t.eta_seconds) : ""}</td></tr>`).join("") ||
      `<tr><td colspan="7">No table recorded.</td></tr>`;
    const facts = [["Source", l.source], ["Target", l.target], ["Source WAL position", st.source_lsn], ["Applied position", st.applied_lsn],
      ["Last applied commit", st.last_applied_commit_time], ["Slot", st.slot_name], ["Slot retains", bytes(l.slot_retained_bytes)],
      ["Process holds the lease", st.running == null ? "" : String(st.running)], ["Reconnects", l.reconnects],
      ["Last failover", d.failover ? `${d.failover.kind}, ${d.failover.state}, started ${new Date(d.failover.started_at).toLocaleString()}` : ""]];
    $("#positions").innerHTML = facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v ?? "")}</dd>`).join("");
    $("#history tbody").innerHTML = d.history.map((e) => `<tr><td>${esc(new Date(e.at).toLocaleString())}</td><td>${esc(e.event)}</td><td>${esc(e.detail)}</td></tr>`).join("") ||
      `<tr><td colspan="3">No event yet.</td></tr>`;
    const warns = (st.warnings || []).concat(l.wal_warning ? [l.wal_warning] : []);
    $("#warnings").hidden = !warns.length;
    $("#warnings").textContent = warns.join("\n");
  });
}

// The failover wizard: choose, see the plan, confirm, watch, results.
function wizard(name) {
  const base = "/api/links/" + encodeURIComponent(name) + "/failover";
  const choice = () => {
    const f = $("#choose");
    return {kind: f.kind.value, validate: f.validate.checked, release_source: f.release_source.checked, reverse: f.reverse.checked,
      cleanup: f.cleanup.checked, max_lag_seconds: parseFloat(f.max_lag_seconds.value) || 0};
  };
  const showError = (e) => { $("#w-error").hidden = false; $("#w-error").textContent = e.message || String(e); };
  const stepsHTML = (steps) => steps.map((s) => `<li data-step="${esc(s.id)}"><strong>${esc(s.title)}</strong> (${esc(s.side)})
    ${s.state && s.state !== "not run" ? stateTag(s.state) : ""} ${s.seconds ? esc(secs(s.seconds)) : ""}
    <div class="what">${esc(s.detail || s.what)}</div></li>`).join("");

  $("#choose").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#w-error").hidden = true;
    try {
      const c = choice();
      const p = await api(base + "/plan", {method: "POST", body: JSON.stringify(c)});
      $("#plan-warning").textContent = p.warning;
      $("#plan-steps").innerHTML = stepsHTML(p.steps);
      const q = new URLSearchParams({kind: c.kind, validate: c.validate, release_source: c.release_source, reverse: c.reverse, cleanup: c.cleanup});
      $("#script").href = base + "/script?" + q;
      $("#w-plan").hidden = false;
      $("#confirm").focus();
    } catch (e) { showError(e); }
  });
  $("#confirm").addEventListener("input", () => { $("#run").disabled = $("#confirm").value !== name; });
  $("#confirm-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api(base, {method: "POST", body: JSON.stringify(Object.assign(choice(), {confirm: $("#confirm").value}))});
      watch();
    } catch (e) { showError(e); }
  });

  let watching = false;
  const watch = () => {
    if (watching) return;
    watching = true;
    $("#w-choose").hidden = true;
    $("#w-plan").hidden = true;
    $("#w-run").hidden = false;
    const tick = async () => {
      let v;
      try { v = await api(base); } catch (e) { showError(e); setTimeout(tick, 1000); return; }
      $("#run-steps").innerHTML = stepsHTML(v.steps);
      if (v.state === "running") { setTimeout(tick, 500); return; }
      results(v);
    };
    tick();
  };
  const results = (v) => {
    const r = v.result || {};
    $("#w-result").hidden = false;
    $("#result-head").innerHTML = `${esc(v.kind)} failover of ${esc(name)}: ${stateTag(v.state)}`;
    const facts = [["Write downtime", r.downtime_seconds != null ? secs(r.downtime_seconds) : "not measured"],
      ["Source end position", r.end_lsn], ["Last applied position", r.applied_lsn],
      ["May be lost", r.may_be_lost_bytes != null ? bytes(r.may_be_lost_bytes) : ""], ["Error", r.error], ["Undo", r.undo]]
      .filter(([, x]) => x);
    $("#result-facts").innerHTML = facts.map(([k, x]) => `<dt>${esc(k)}</dt><dd>${esc(x)}</dd>`).join("");
    $("#result-next").innerHTML = (r.next || []).concat(r.notes || []).map((n) => `<li>${esc(n)}</li>`).join("") ||
      "<li>Fix the cause above, then try again.</li>";
  };
  // A failover started earlier (here or from another page) shows again.
  api(base).then(() => watch()).catch(() => {});
}

function assessPage() {
  $("#assess").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#a-error").hidden = true;
    $("#a-busy").textContent = "Assessing…";
    $("#a-run").disabled = true;
    try {
      const rep = await api("/api/assess", {method: "POST", body: JSON.stringify({source: $("#a-source").value, target: $("#a-target").value})});
      $("#a-summary").textContent = `${rep.source.address}: ${rep.blockers} blockers, ${rep.warnings} warnings` + (rep.blockers ? " — pglink start would refuse." : ".");
      $("#findings tbody").innerHTML = rep.findings.map((f) => `<tr><td>${stateTag(f.severity)}</td><td>${esc(f.side)}</td>
        <td>${esc(f.what)}</td><td>${esc(f.remedy)}${(f.sql || []).map((s) => `<pre>${esc(s)}</pre>`).join("")}</td></tr>`).join("");
      $("#a-result").hidden = false;
    } catch (e) {
      $("#a-error").hidden = false;
      $("#a-error").textContent = e.message;
    } finally {
      $("#a-busy").textContent = "";
      $("#a-run").disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const el = document.querySelector("[data-page]");
  if (!el) return;
  ({overview, link: () => linkPage(el.dataset.link), failover: () => wizard(el.dataset.link), assess: assessPage})[el.dataset.page]();
});
