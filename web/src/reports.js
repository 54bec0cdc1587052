// The reports page (/reports/): a period (today, yesterday, the last 7 or 30
// days, or any dates), then the call records' figures for it, as the
// engine's report endpoints compute them: totals, calls by hour (by day past
// two days), service level per queue, abandons by how long the caller
// waited, the queues, teams and agents, wrap-up codes, and the calls one by
// one with a player for those whose recording the user may hear. Every
// table has its CSV download (the API's own, format=csv).
//
// Dates are the browser's local days; the API takes the exact instants.
// What a user sees is what the API gives their role: a team lead their
// team's agents, no recordings for a role without recordings:read.

import { Api, ApiError } from "./api.js";
import { horizontalBars, stackedBars } from "./charts.js";
import { locale, t, useCatalog } from "./i18n.js";
import zh from "./i18n/zh-reports.js";
import { $, clock, element, enterPage, signOutAndReload, wireSignIn } from "./ui.js";

useCatalog(zh); // before any text of this page is looked up

const api = new Api();
const DAY = 86400 * 1000;
const BUCKETS = [
  ["abandoned_0_10s", t("under 10 s")],
  ["abandoned_10_30s", t("10–30 s")],
  ["abandoned_30_60s", t("30–60 s")],
  ["abandoned_60_120s", t("1–2 min")],
  ["abandoned_over_120s", t("over 2 min")],
];
// The columns of the figures tables: [key, heading, format].
const FIGURES = [
  ["offered", t("Offered"), count],
  ["answered", t("Answered"), count],
  ["abandoned", t("Abandoned"), count],
  ["service_level", t("Service level"), share],
  ["asa_s", t("ASA"), seconds],
  ["aht_s", t("AHT"), seconds],
  ["acw_s", t("Wrap-up"), seconds],
  ["csat", t("CSAT"), share],
];

// The derived figures (null with no calls), beside the counts.
const RATES = new Set(["asa_s", "aht_s", "att_s", "acw_s", "service_level", "service_level_with_abandons", "survey_avg", "csat"]);

let me = null;
let window_ = null; // {since: Date, until: Date}
let nextCalls = null;
let redraw = null; // the charts of the last load, drawn again at a new width

function count(value) {
  return value === null || value === undefined ? "–" : String(value);
}

function share(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

function seconds(value) {
  return value === null || value === undefined ? "–" : clock(value);
}

function localDay(date) {
  const day = new Date(date);
  day.setHours(0, 0, 0, 0);
  return day;
}

function dateValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function fromDateValue(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d);
}

function addDays(date, days) {
  const next = new Date(date);
  next.setDate(next.getDate() + days);
  return next;
}

// The period's [since, until) from the controls.
function period() {
  const choice = $("period").value;
  const today = localDay(new Date());
  if (choice === "today") return { since: today, until: addDays(today, 1) };
  if (choice === "yesterday") return { since: addDays(today, -1), until: today };
  if (choice === "custom") {
    const since = fromDateValue($("since").value);
    const until = addDays(fromDateValue($("until").value), 1); // "to" is a whole day
    return { since, until };
  }
  return { since: addDays(today, 1 - Number(choice)), until: addDays(today, 1) };
}

function query(extra = {}) {
  const params = new URLSearchParams({ since: window_.since.toISOString(), until: window_.until.toISOString() });
  for (const [key, value] of Object.entries(extra)) if (value) params.set(key, value);
  return params.toString();
}

// -- drawing ------------------------------------------------------------------------------

function figuresTable(id, nameHeading, rows, nameOf, extra = []) {
  const table = $(id);
  table.replaceChildren();
  const head = element("tr");
  head.append(element("th", null, t(nameHeading)));
  for (const [, heading] of [...FIGURES, ...extra]) head.append(element("th", "num", heading));
  const thead = element("thead");
  thead.append(head);
  const body = element("tbody");
  for (const row of rows) {
    const tr = element("tr");
    // The row's name as the API gives it; the two made here are shown translated.
    const key = nameOf(row);
    tr.dataset.name = key;
    const name = element("th", null, key === "Total" || key === "No team" ? t(key) : key);
    name.scope = "row";
    tr.append(name);
    for (const [key, , format] of [...FIGURES, ...extra]) {
      const cell = element("td", "num", format(row[key]));
      cell.dataset.field = key;
      tr.append(cell);
    }
    body.append(tr);
  }
  table.append(thead, body);
}

function drawTotals(total) {
  const box = $("totals");
  box.replaceChildren();
  const tiles = [
    ["offered", t("Offered"), count(total.offered)],
    ["answered", t("Answered"), count(total.answered)],
    ["abandoned", t("Abandoned"), count(total.abandoned)],
    ["service_level", t("Service level"), share(total.service_level)],
    ["asa_s", t("Average answer"), seconds(total.asa_s)],
    ["aht_s", t("Average handling"), seconds(total.aht_s)],
    ["csat", t("CSAT ({n} surveyed)", { n: total.surveyed }), share(total.csat)],
  ];
  for (const [key, label, value] of tiles) {
    const tile = element("div");
    tile.dataset.field = key;
    tile.append(element("dt", null, label), element("dd", null, value));
    box.append(tile);
  }
}

function hourLabel(date, byDay) {
  if (byDay) return date.toLocaleDateString(locale, { month: "short", day: "numeric" });
  return `${String(date.getHours()).padStart(2, "0")}h`;
}

function drawVolume(hours) {
  const byDay = window_.until - window_.since > 2 * DAY;
  const points = new Map();
  for (const row of hours) {
    const at = new Date(row.hour);
    const key = byDay ? localDay(at).getTime() : at.getTime();
    const point = points.get(key) || { at: new Date(key), answered: 0, abandoned: 0, offered: 0 };
    point.answered += row.answered;
    point.abandoned += row.abandoned;
    point.offered += row.offered;
    points.set(key, point);
  }
  const rows = [...points.values()].map((p) => ({
    label: hourLabel(p.at, byDay),
    tip: t("{when}: {offered} offered, {answered} answered, {abandoned} abandoned", {
      when: hourLabel(p.at, byDay),
      offered: p.offered,
      answered: p.answered,
      abandoned: p.abandoned,
    }),
    values: { answered: p.answered, abandoned: p.abandoned, other: Math.max(0, p.offered - p.answered - p.abandoned) },
  }));
  $("volume-title").textContent = byDay ? t("Calls by day") : t("Calls by hour");
  const total = rows.reduce((sum, r) => sum + r.values.answered + r.values.abandoned + r.values.other, 0);
  const chart = stackedBars(
    rows,
    [
      { key: "answered", className: "answered" },
      { key: "abandoned", className: "abandoned" },
      { key: "other", className: "other" },
    ],
    byDay ? t("{n} calls offered, by day", { n: total }) : t("{n} calls offered, by hour", { n: total }),
    widthOf("volume-chart"),
  );
  $("volume-chart").replaceChildren(chart);
  $("volume-chart").dataset.bars = String(rows.filter((r) => r.values.answered + r.values.abandoned + r.values.other).length);
}

// The chart box's width in CSS pixels (the charts draw at the size shown).
function widthOf(id) {
  return Math.max(280, Math.round($(id).clientWidth || 720));
}

function drawServiceLevels(queues) {
  const rows = queues
    .filter((q) => q.service_level !== null)
    .map((q) => ({
      label: q.queue,
      value: q.service_level,
      text: t("{share} in {s} s", { share: share(q.service_level), s: q.service_level_s }),
      className: q.service_level >= 0.8 ? "answered" : q.service_level >= 0.6 ? "fair" : "abandoned",
    }));
  const box = $("sl-chart");
  if (!rows.length) box.replaceChildren(element("p", "muted", t("No answered calls in this period.")));
  else box.replaceChildren(horizontalBars(rows, t("Share answered within each queue's threshold"), 1, widthOf("sl-chart")));
}

function drawAbandons(total) {
  const rows = BUCKETS.map(([key, label]) => ({ label, value: total[key], text: String(total[key]), className: "abandoned" }));
  const box = $("abandon-chart");
  if (!total.abandoned) box.replaceChildren(element("p", "muted", t("Nobody hung up while waiting in this period.")));
  else box.replaceChildren(horizontalBars(rows, t("{n} callers hung up while waiting, by how long", { n: total.abandoned }), 0, widthOf("abandon-chart")));
}

function drawCodes(codes) {
  const table = $("codes-table");
  table.replaceChildren();
  const head = element("tr");
  for (const heading of ["Queue", "Code", "Calls"]) head.append(element("th", null, t(heading)));
  const thead = element("thead");
  thead.append(head);
  const body = element("tbody");
  for (const row of codes) {
    const tr = element("tr");
    tr.append(element("td", null, row.queue), element("td", null, row.code || t("(none given)")), element("td", "num", row.calls));
    body.append(tr);
  }
  if (!codes.length) {
    const tr = element("tr");
    const cell = element("td", "muted", t("No answered calls in this period."));
    cell.colSpan = 3;
    tr.append(cell);
    body.append(tr);
  }
  table.append(thead, body);
}

function callsHead() {
  const table = $("calls-table");
  table.replaceChildren();
  const head = element("tr");
  for (const heading of ["Arrived", "Caller", "Queue", "Agent", "Outcome", "Waited", "Talked", "Code"]) {
    head.append(element("th", null, t(heading)));
  }
  head.append(element("th", "actions"));
  const thead = element("thead");
  thead.append(head);
  table.append(thead, element("tbody"));
}

function span(from, to) {
  if (!from || !to) return "–";
  return clock((new Date(to) - new Date(from)) / 1000);
}

function play(call) {
  $("player").hidden = false;
  $("player-title").textContent = `${new Date(call.arrived_at).toLocaleString(locale)} · ${call.caller_number || t("unknown")} · ${call.agent || ""}`;
  const audio = $("player-audio");
  audio.src = call.recording_url;
  audio.dataset.call = call.call_id;
  audio.play().catch(() => undefined);
}

function addCalls(calls) {
  const body = $("calls-table").querySelector("tbody");
  for (const call of calls) {
    const tr = element("tr");
    tr.dataset.call = call.call_id;
    const arrived = new Date(call.arrived_at);
    tr.append(
      element("td", "num", arrived.toLocaleString(locale, { dateStyle: "short", timeStyle: "medium" })),
      element("td", null, call.caller_number || "–"),
      element("td", null, call.queue || "–"),
      element("td", null, call.agent || "–"),
      element("td", null, call.disposition ? t(call.disposition) : "–"),
      element("td", "num", span(call.queued_at, call.answered_at || call.ended_at)),
      element("td", "num", span(call.answered_at, call.ended_at)),
      element("td", null, call.wrap_up_code || "–"),
    );
    const cell = element("td", "actions");
    if (call.recording_url && me.permissions.includes("recordings:read")) {
      const button = element("button", "secondary small-button", t("Play"));
      button.type = "button";
      button.setAttribute("aria-label", t("Play the recording of the call at {time}", { time: arrived.toLocaleTimeString(locale) }));
      button.addEventListener("click", () => play(call));
      cell.append(button);
    }
    tr.append(cell);
    body.append(tr);
  }
}

async function moreCalls() {
  if (!nextCalls) return;
  const data = await api.request("GET", `/api/v1/calls?${query({ limit: "100", after: nextCalls, queue: $("queue").value })}`);
  addCalls(data.calls);
  nextCalls = data.next;
  $("more-calls").hidden = !nextCalls;
}

function links() {
  const queue = $("queue").value;
  $("csv-hourly").href = `/api/v1/reports/hourly?${query({ format: "csv", queue })}`;
  $("csv-queues").href = `/api/v1/reports/queues?${query({ format: "csv" })}`;
  $("csv-agents").href = `/api/v1/reports/agents?${query({ format: "csv" })}`;
  $("csv-codes").href = `/api/v1/reports/wrap-up-codes?${query({ format: "csv", queue })}`;
  $("csv-calls").href = `/api/v1/calls?${query({ format: "csv", queue })}`;
}

// -- loading ------------------------------------------------------------------------------

async function load() {
  document.body.dataset.loaded = "no";
  $("range-error").textContent = "";
  window_ = period();
  const queue = $("queue").value;
  const hourly = window_.until - window_.since <= 93 * DAY;
  try {
    const [queues, agents, hours, codes, calls] = await Promise.all([
      api.request("GET", `/api/v1/reports/queues?${query()}`),
      api.request("GET", `/api/v1/reports/agents?${query()}`),
      hourly ? api.request("GET", `/api/v1/reports/hourly?${query({ queue })}`) : Promise.resolve({ hours: [] }),
      api.request("GET", `/api/v1/reports/wrap-up-codes?${query({ queue })}`),
      api.request("GET", `/api/v1/calls?${query({ limit: "100", queue })}`),
    ]);
    const chosen = queue ? queues.queues.filter((q) => q.queue === queue) : queues.queues;
    // A queue with no calls in the period: its figures are nothing, not everyone's.
    const none = Object.fromEntries(Object.keys(queues.total).map((k) => [k, RATES.has(k) ? null : 0]));
    const total = queue ? chosen[0] || none : queues.total;
    const names = new Set([...$("queue").options].map((o) => o.value));
    for (const row of queues.queues) if (!names.has(row.queue)) $("queue").append(new Option(row.queue, row.queue));
    drawTotals(total);
    redraw = () => {
      drawVolume(hours.hours);
      drawServiceLevels(chosen);
      drawAbandons(total);
    };
    redraw();
    figuresTable("queues-table", "Queue", [...chosen, ...(queue ? [] : [{ queue: "Total", ...queues.total }])], (r) => r.queue);
    figuresTable("teams-table", "Team", agents.teams, (r) => r.team || "No team");
    figuresTable("agents-table", "Agent", agents.agents, (r) => r.agent, [["ring_no_answer", t("Missed"), count]]);
    drawCodes(codes.codes);
    callsHead();
    addCalls(calls.calls);
    nextCalls = calls.next;
    $("more-calls").hidden = !nextCalls;
    links();
    document.body.dataset.loaded = "yes";
  } catch (error) {
    const problem = error instanceof ApiError && error.body && error.body.parameter;
    $("range-error").textContent = problem ? `${problem}: ${error.message}` : error.message;
    document.body.dataset.loaded = "failed";
  }
}

function syncDates() {
  const custom = $("period").value === "custom";
  if (!custom) {
    const { since, until } = period();
    $("since").value = dateValue(since);
    $("until").value = dateValue(addDays(until, -1));
  }
}

// -- signing in --------------------------------------------------------------------------

async function start() {
  me = await api.me();
  if (!enterPage(me, "/reports/")) return;
  $("status").textContent = me.permissions.includes("recordings:read") ? t("Reports and recordings") : t("Reports");
  $("reports").hidden = false;
  syncDates();
  await load();
}

$("period").addEventListener("change", () => {
  syncDates();
  if ($("period").value !== "custom") load();
});
for (const id of ["since", "until"]) {
  $(id).addEventListener("change", () => {
    $("period").value = "custom";
  });
}
$("queue").addEventListener("change", load);
// A few dozen shapes: drawn again at once, so the next frame shows the new width.
window.addEventListener("resize", () => redraw && redraw());
$("range").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
$("more-calls").addEventListener("click", () => moreCalls().catch((error) => ($("range-error").textContent = error.message)));
wireSignIn(api, start);
$("sign-out").addEventListener("click", () => signOutAndReload(api));
start().catch((error) => {
  if (!(error instanceof ApiError && error.status === 401)) {
    $("sign-in-error").textContent = error.message;
  }
});
