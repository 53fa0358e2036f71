// The cityfed console: each page loads its data from /api/… and draws it. No inline script, no
// third-party origin: Chart.js is served from /static/vendor.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

async function call(name, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"content-type": "application/json", "x-csrf-token": csrf()},
    body: JSON.stringify(body)};
  const url = body === undefined ? `/api/${name}` : `/api/${name}`;
  const response = await fetch(url, {credentials: "same-origin", ...options});
  if (response.status === 401) { window.location = "/login"; throw new Error("log in first"); }
  const data = await response.json();
  if (!response.ok) { const e = new Error(data.error || response.statusText); e.data = data; throw e; }
  return data;
}

const get = (name, params) => call(params ? `${name}?${new URLSearchParams(params)}` : name);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(tbody, rows) { tbody.replaceChildren(...rows); }

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

const fmt = (v) => v === null || v === undefined ? "NULL"
  : typeof v === "number" ? (Number.isInteger(v) ? v.toLocaleString("en") : v.toLocaleString("en", {maximumFractionDigits: 4}))
  : String(v);

function checkpointCell(cp) {
  if (!cp) return el("td", {class: "muted"}, "—");
  if (cp.verified === null) return el("td", {class: "muted"}, cp.note);
  if (cp.verified === false) return el("td", {class: "bad"}, `✗ ${cp.note}`);
  return el("td", {class: "ok"}, `✓ ${cp.size} records, ${ago(cp.age_seconds)}`,
            el("div", {class: "muted small"}, cp.note));
}

// Region ------------------------------------------------------------------------------------

async function regionPage() {
  const tbody = document.querySelector("#cities tbody");
  async function refresh() {
    try {
      const data = await get("region");
      document.getElementById("region-summary").textContent =
        `${data.up} of ${data.cities.length} cities up · manifest version ${data.manifest_version}` +
        ` (expires ${data.manifest_expires_at.slice(0, 10)})`;
      fill(tbody, data.cities.map((c) => {
        const cert = c.certificate || {};
        return el("tr", {"data-city": c.city, "data-health": c.health, class: c.health === "up" ? "" : "down"},
          el("td", {}, el("b", {}, c.city), " ", el("span", {class: "muted"}, c.name)),
          el("td", {class: `health ${c.health === "up" ? "ok" : "bad"}`}, c.health === "up" ? "● up" : `● ${c.health}`),
          el("td", {}, `${c.health_ms} ms`),
          el("td", {}, c.last_answer_ms === null || c.last_answer_ms === undefined ? "—" : `${c.last_answer_ms} ms`),
          cert.not_after ? el("td", {class: cert.matches_manifest ? "" : "bad"},
            `expires ${cert.not_after.slice(0, 10)} (${cert.days_left} days)`, cert.note ? el("div", {class: "small"}, cert.note) : null)
            : el("td", {class: "muted"}, cert.note || "—"),
          checkpointCell(c.checkpoint));
      }));
    } catch (error) {
      document.getElementById("region-summary").textContent = `Not refreshed: ${error.message}`;
    }
  }
  await refresh();
  setInterval(refresh, 3000);
}

// Ask ---------------------------------------------------------------------------------------

const ACCESS_TITLE = {row: "rows may leave", aggregate: "private statistics", match: "linkage key only", deny: "no use"};

async function loadCatalog() {
  const box = document.getElementById("catalog");
  try {
    const data = await get("catalog", {purpose: document.getElementById("purpose").value});
    const cities = data.cities.map((c) => c.city);
    box.replaceChildren(...data.datasets.map((d) => el("details", {"data-dataset": d.name},
      el("summary", {}, el("b", {}, d.name), " ", el("span", {class: "muted small"}, d.description)),
      el("table", {class: "grid small"},
        el("thead", {}, el("tr", {}, el("th", {}, "column"), el("th", {}, "type"), ...cities.map((c) => el("th", {}, c)))),
        el("tbody", {}, d.columns.map((col) => el("tr", {"data-column": col.name},
          el("td", {title: col.description}, col.name, col.unit ? el("span", {class: "muted"}, ` (${col.unit})`) : null),
          el("td", {class: "muted"}, col.type),
          ...cities.map((c) => { const a = col.access[c] || "—"; return el("td", {class: `access ${a}`, title: ACCESS_TITLE[a] || "no answer"}, a); }))))))),
      ...data.cities.filter((c) => c.error).map((c) => el("p", {class: "bad small"}, `${c.city}: ${c.error}`)));
  } catch (error) { box.textContent = error.message; }
}

function showSqlError(message, position) {
  const box = document.getElementById("sql-error");
  const sql = document.getElementById("sql");
  document.getElementById("sql-message").textContent = message;
  const marker = document.getElementById("sql-marker");
  if (position === null || position === undefined) {
    marker.textContent = "";
  } else {
    const text = sql.value;
    const start = text.lastIndexOf("\n", position - 1) + 1;
    const end = text.indexOf("\n", position);
    const line = text.slice(start, end === -1 ? undefined : end);
    marker.textContent = `${line}\n${" ".repeat(position - start)}^`;
    marker.dataset.position = position;
    sql.focus();
    const word = /^[\w"]+/.exec(text.slice(position));
    sql.setSelectionRange(position, position + (word ? word[0].length : 1));
  }
  box.hidden = false;
}

let chart = null;

const errorBars = {
  id: "errorBars",
  afterDatasetsDraw(c) {
    const {ctx} = c;
    c.data.datasets.forEach((dataset, i) => {
      const meta = c.getDatasetMeta(i);
      if (meta.hidden || !dataset.errors) return;
      const scale = c.scales[meta.yAxisID];
      ctx.save();
      ctx.strokeStyle = "#222";
      ctx.lineWidth = 1.5;
      meta.data.forEach((point, j) => {
        const width = dataset.errors[j], value = dataset.data[j];
        if (width === null || width === undefined || value === null) return;
        const top = scale.getPixelForValue(value + width), bottom = scale.getPixelForValue(value - width);
        ctx.beginPath();
        ctx.moveTo(point.x, top); ctx.lineTo(point.x, bottom);
        ctx.moveTo(point.x - 5, top); ctx.lineTo(point.x + 5, top);
        ctx.moveTo(point.x - 5, bottom); ctx.lineTo(point.x + 5, bottom);
        ctx.stroke();
      });
      ctx.restore();
    });
  },
};

const COLOURS = ["#2f6db5", "#d08a1e", "#3a9a5b", "#b5412f", "#7a4fb5"];

function drawChart(spec) {
  const canvas = document.getElementById("answer-chart");
  if (chart) { chart.destroy(); chart = null; }
  canvas.parentElement.hidden = !spec;
  if (!spec) return;
  chart = new Chart(canvas, {
    type: spec.kind,
    data: {labels: spec.labels, datasets: spec.series.map((s, i) => ({
      label: s.name, data: s.values, errors: s.errors,
      backgroundColor: COLOURS[i % COLOURS.length] + "b0", borderColor: COLOURS[i % COLOURS.length]}))},
    options: {animation: false, responsive: true, maintainAspectRatio: false,
              scales: {x: {title: {display: !!spec.label_column, text: spec.label_column}}}},
    plugins: [errorBars],
  });
}

function showAnswer(a) {
  document.getElementById("answer").hidden = false;
  document.getElementById("csv").href = `/answers/${a.id}.csv`;
  const answered = a.cities.filter((c) => c.status === "answered").length;
  document.getElementById("answer-summary").textContent =
    `${answered} of ${a.cities.length} cities answered · ${a.private ? "private answer: values are noisy, bars show 95% intervals" : "exact answer"}` +
    ` · ε ${fmt(a.epsilon_spent)} spent on this question`;
  drawChart(a.chart);
  const table = document.getElementById("answer-table");
  table.tHead.replaceChildren(el("tr", {}, a.columns.map((c) => el("th", {}, c))));
  fill(table.tBodies[0], a.rows.map((row, r) => el("tr", {}, row.map((v, i) => {
    const acc = a.accuracy[i];
    const w = acc && acc.noisy ? acc.half_widths_95[r] : null;
    return el("td", {}, fmt(v), w === null || w === undefined ? null : el("span", {class: "muted"}, ` ±${fmt(typeof w === "number" ? Math.round(w * 100) / 100 : w)}`));
  }))));
  fill(document.querySelector("#answer-cities tbody"), a.cities.map((c) => el("tr", {"data-city": c.city, "data-status": c.status},
    el("td", {}, c.city), el("td", {class: c.status === "answered" ? "ok" : "bad"}, c.status),
    el("td", {}, c.groups), el("td", {}, `${c.elapsed_ms} ms`),
    el("td", {}, c.private ? fmt(c.epsilon_charged) : "exact"), el("td", {}, c.private ? fmt(c.epsilon_remaining) : ""),
    el("td", {class: "small"}, c.status === "answered" ? "" : `${c.code}: ${c.detail}`))));
}

async function askPage() {
  const purpose = document.getElementById("purpose");
  purpose.addEventListener("change", loadCatalog);
  loadCatalog();
  document.getElementById("ask").addEventListener("click", async () => {
    const button = document.getElementById("ask");
    document.getElementById("sql-error").hidden = true;
    button.disabled = true;
    try {
      showAnswer(await call("ask", {sql: document.getElementById("sql").value, purpose: purpose.value}));
    } catch (error) {
      showSqlError(error.message, error.data ? error.data.position : null);
    } finally { button.disabled = false; }
  });
}

// Budget ------------------------------------------------------------------------------------

async function budgetPage() {
  const purpose = document.getElementById("purpose");
  async function refresh() {
    const data = await get("budget", {purpose: purpose.value});
    fill(document.querySelector("#budget tbody"), data.cities.map((b) => b.error
      ? el("tr", {"data-city": b.city}, el("td", {}, b.city), el("td", {colSpan: 7, class: "bad"}, b.error))
      : el("tr", {"data-city": b.city},
          el("td", {}, b.city), el("td", {}, b.period), el("td", {}, fmt(b.epsilon_spent)),
          el("td", {class: b.epsilon_left < b.epsilon_per_question ? "bad" : "ok"}, `${fmt(b.epsilon_left)} of ${fmt(b.epsilon_limit)}`),
          el("td", {}, el("meter", {min: 0, max: b.epsilon_limit || 1, value: b.epsilon_left})),
          el("td", {}, fmt(b.epsilon_per_question)), el("td", {}, `${fmt(b.delta_spent)} of ${fmt(b.delta_limit)}`),
          el("td", {class: "small"}, b.resets_at))));
  }
  purpose.addEventListener("change", refresh);
  await refresh();
}

// Audit -------------------------------------------------------------------------------------

async function auditPage() {
  const data = await get("audit");
  fill(document.querySelector("#logs tbody"), data.cities.map((c) => {
    const cp = c.checkpoint;
    if (!cp || cp.verified !== true) return el("tr", {"data-city": c.city}, el("td", {}, c.city), checkpointCell(cp), el("td", {colSpan: 4}, c.health));
    return el("tr", {"data-city": c.city}, el("td", {}, c.city), el("td", {class: "ok"}, "✓ verified"),
      el("td", {}, cp.size), el("td", {}, `${cp.time} (${ago(cp.age_seconds)})`), el("td", {class: "mono"}, cp.root + "…"), el("td", {class: "small"}, cp.note));
  }));
  fill(document.querySelector("#refused tbody"), data.refused.length ? data.refused.map((r) => el("tr", {},
    el("td", {}, r.city), el("td", {}, r.status), el("td", {}, r.code), el("td", {class: "small"}, r.reason), el("td", {}, r.count)))
    : [el("tr", {}, el("td", {colSpan: 5, class: "muted"}, "No refusals."))]);
  fill(document.querySelector("#receipts tbody"), data.answers.map((a) => el("tr", {"data-answer": a.id},
    el("td", {}, a.id), el("td", {}, a.asked_at), el("td", {}, a.purpose), el("td", {class: "mono small"}, a.sql),
    el("td", {}, a.receipts), el("td", {}, el("button", {type: "button", class: "verify", onclick: () => verify(a.id)}, "Verify")))));
}

async function verify(id) {
  const box = document.getElementById("verification");
  box.hidden = false;
  box.textContent = "Verifying…";
  try {
    const data = await call("verify", {answer: id});
    const ok = data.findings.every((f) => f.ok);
    box.replaceChildren(el("h3", {class: ok ? "ok" : "bad", id: "verification-result"}, ok ? `✓ Answer #${id}: every receipt and the merge verify` : `✗ Answer #${id} does not verify`),
      el("ul", {}, data.findings.map((f) => el("li", {class: f.ok ? "ok" : "bad"}, el("b", {}, f.subject), `: ${f.text}`))));
  } catch (error) { box.textContent = error.message; }
}

// Checks ------------------------------------------------------------------------------------

async function checksPage() {
  const data = await get("checks");
  const options = (select, values) => select.replaceChildren(...values.map((v) => el("option", {value: v}, v)));
  options(document.getElementById("check"), data.checks.map((c) => c.name));
  options(document.getElementById("owner"), data.cities);
  options(document.getElementById("partner"), data.cities);
  if (data.cities.length > 1) document.getElementById("partner").value = data.cities[1];
  const show = (runs) => fill(document.querySelector("#runs tbody"), runs.map((r) => el("tr", {"data-check": r.check},
    el("td", {class: "small"}, r.run_at), el("td", {}, r.check), el("td", {}, `${r.owner} × ${r.partner}`),
    el("td", {class: "count"}, r.count === undefined ? "no answer" : r.exact ? `${r.count}` : `≈ ${r.count} ± ${Math.round(r.count_half_width_95)}`),
    el("td", {class: "small"}, el("ul", {}, (r.learned.length ? r.learned : r.cities.filter((c) => c.status !== "answered").map((c) => `${c.city}: ${c.status}: ${c.detail}`)).map((l) => el("li", {}, l)))))));
  show(data.runs);
  document.getElementById("run-check").addEventListener("click", async () => {
    const error = document.getElementById("check-error");
    error.hidden = true;
    try {
      await call("run-check", {check: document.getElementById("check").value,
        owner: document.getElementById("owner").value, partner: document.getElementById("partner").value});
      show((await get("checks")).runs);
    } catch (e) { error.textContent = e.message; error.hidden = false; }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    await fetch("/logout", {method: "POST", headers: {"x-csrf-token": csrf()}, credentials: "same-origin"});
    window.location = "/login";
  });
  const page = {region: regionPage, ask: askPage, budget: budgetPage, audit: auditPage, checks: checksPage}[document.body.dataset.page];
  if (page) page();
});
