// The supervisor wallboard (/wallboard/): live queues (waiting, oldest wait,
// today's service level, answered and abandoned), agents by team with their
// state and time in it (pause or log one out), and the calls connected to
// agents, each with listen, whisper and barge through the supervisor's own
// browser phone. A big-screen mode shows the figures alone, large, for a wall.
//
// A snapshot of /api/v1/queues, /api/v1/agents and /api/v1/live/calls, then
// the engine's event stream keeps it current: nothing here polls. Events that
// arrive while a snapshot loads make it load again, so the page converges on
// what the API says. The body's data-stream, data-phone and data-monitor
// attributes mirror the page's state, for styling and for the browser tests.

import { Api, ApiError } from "./api.js";
import { EventStream } from "./events.js";
import { locale, t, useCatalog } from "./i18n.js";
import zh from "./i18n/zh-wallboard.js";
import { SipPhone } from "./sipphone.js";
import { $, clock, element, enterPage, signOutAndReload, stateLabel, wireSignIn } from "./ui.js";

useCatalog(zh); // before any text of this page is looked up

const api = new Api();
const TYPES = [
  "QueueJoined",
  "QueueLeft",
  "AgentStateChanged",
  "AgentOffered",
  "RingAttempt",
  "ConsultationChanged",
  "CallEnded",
];
const NO_TEAM = "No team"; // also the section's data-team, whatever the language
// The states in a team's summary, in this order.
const SUMMARY = ["logged_out", "available", "ringing", "on_call", "wrap_up", "paused"];
const MODES = { listen: "Listen", whisper: "Whisper", barge: "Barge" };
const PHONE = {
  connecting: "connecting…",
  registered: "ready",
  unregistered: "not registered",
  failed: "registration failed",
  offline: "offline, reconnecting…",
};
const MONITOR_STATE = { ringing: "ringing", connected: "connected" };

let me = null;
let phone = null;
let stream = null;
let loading = false;
let dirty = false; // an event came while a snapshot was loading
let queues = new Map(); // name -> {row, waiting: Map(call_id -> joined ms), today}
let agents = new Map(); // username -> {row, since: ms | null, offer}
let calls = new Map(); // call_id -> {call_id, agent, caller, queue, since}
let monitoring = null; // {agent, call_id, mode, state: "ringing" | "connected"}
let queued = false;
let countsTimer = null;

// -- the snapshot ---------------------------------------------------------------------

function queueFrom(row, now) {
  const waiting = new Map();
  for (const call of row.calls) waiting.set(call.call_id, now - call.waited_s * 1000);
  return { row, waiting, today: { ...row.today } };
}

async function load() {
  if (loading) {
    dirty = true;
    return;
  }
  loading = true;
  try {
    do {
      dirty = false;
      const [q, a, live] = await Promise.all([
        api.request("GET", "/api/v1/queues"),
        api.request("GET", "/api/v1/agents"),
        api.request("GET", "/api/v1/live/calls"),
      ]);
      const now = Date.now();
      queues = new Map(q.queues.map((row) => [row.name, queueFrom(row, now)]));
      const offers = new Map([...agents].map(([name, agent]) => [name, agent.offer]));
      agents = new Map(
        a.agents.map((row) => [
          row.username,
          {
            row,
            since: typeof row.state_s === "number" ? now - row.state_s * 1000 : null,
            offer: offers.get(row.username) || null,
          },
        ]),
      );
      calls = new Map();
      for (const call of live.calls) {
        if (!call.agent || !call.answered) continue;
        const agent = agents.get(call.agent);
        const since = agent && agent.row.state === "on_call" ? agent.since : null;
        calls.set(call.id, {
          call_id: call.id,
          agent: call.agent,
          caller: call.caller,
          queue: call.queue,
          since,
        });
      }
    } while (dirty);
    $("agent-error").textContent = "";
    document.body.dataset.loaded = "yes";
  } catch (error) {
    $("agent-error").textContent = error.message;
  } finally {
    loading = false;
  }
  render();
}

// The per-queue agent counts follow agent changes by skill, which the page
// does not know, and an agent's figures (answered today) the ends of calls:
// after such an event the queue and agent rows are fetched again (at most
// one fetch per 300 ms), and only those parts are taken from them.
function refreshCounts() {
  if (countsTimer !== null) return;
  countsTimer = setTimeout(async () => {
    countsTimer = null;
    try {
      const [q, a] = await Promise.all([
        api.request("GET", "/api/v1/queues"),
        api.request("GET", "/api/v1/agents"),
      ]);
      for (const row of q.queues) {
        const queue = queues.get(row.name);
        if (queue) queue.row = { ...queue.row, ...agentCounts(row) };
      }
      for (const row of a.agents) {
        const agent = agents.get(row.username);
        if (!agent) continue;
        const { answered_today, talk_time_s, misses } = row;
        agent.row = { ...agent.row, answered_today, talk_time_s, misses };
      }
      render();
    } catch {
      // the next change fetches again
    }
  }, 300);
}

function agentCounts(row) {
  const { logged_in, available, on_call, paused, ringing, wrap_up } = row;
  return { logged_in, available, on_call, paused, ringing, wrap_up };
}

// -- events -------------------------------------------------------------------------

function onEvent(event) {
  if (loading) {
    dirty = true;
    return;
  }
  const now = Date.now();
  const e = event.detail;
  switch (event.type) {
    case "QueueJoined": {
      const queue = queues.get(e.queue);
      if (!queue) return load();
      queue.waiting.set(e.call_id, now);
      queue.today.offered += 1;
      break;
    }
    case "QueueLeft": {
      const queue = queues.get(e.queue);
      if (!queue) return load();
      queue.waiting.delete(e.call_id);
      countLeft(queue.today, e);
      break;
    }
    case "AgentStateChanged": {
      const agent = agents.get(e.agent);
      if (!agent) return load();
      agent.row = { ...agent.row, state: e.new, reason: e.reason, logged_in: e.new !== "logged_out" };
      agent.row.paused = e.new === "paused";
      agent.since = now;
      if (e.new !== "ringing" && e.new !== "on_call") agent.offer = null;
      refreshCounts();
      break;
    }
    case "AgentOffered": {
      const agent = agents.get(e.agent);
      if (agent) agent.offer = { call_id: e.call_id, caller: e.caller, queue: e.queue };
      break;
    }
    case "RingAttempt": {
      if (e.outcome !== "answered") break;
      const agent = agents.get(e.agent);
      const offer = agent && agent.offer && agent.offer.call_id === e.call_id ? agent.offer : {};
      calls.set(e.call_id, {
        call_id: e.call_id,
        agent: e.agent,
        caller: offer.caller || null,
        queue: e.queue,
        since: now,
      });
      break;
    }
    case "ConsultationChanged": {
      // A completed consult transfer leaves the caller with the colleague.
      const call = calls.get(e.call_id);
      if (call && e.state === "completed") call.agent = e.extension;
      break;
    }
    case "CallEnded": {
      calls.delete(e.call_id);
      refreshCounts();
      if (monitoring && monitoring.call_id === e.call_id) setMonitoring(null);
      break;
    }
    default:
      return;
  }
  schedule();
}

function countLeft(today, e) {
  if (e.outcome === "answered") {
    today.answered += 1;
    if (e.within_service_level) today.answered_in_sl += 1;
    today.service_level = today.answered_in_sl / today.answered;
  } else if (e.outcome === "abandoned") {
    today.abandoned += 1;
    if (e.within_service_level) today.abandoned_in_sl += 1;
  } else {
    today.other += 1;
  }
}

function startStream() {
  stream = new EventStream({ types: TYPES });
  stream.addEventListener("open", () => {
    document.body.dataset.stream = "open";
    $("status").textContent = t("Live");
    load();
  });
  stream.addEventListener("gap", () => load());
  stream.addEventListener("closed", () => {
    document.body.dataset.stream = "closed";
    $("status").textContent = t("Reconnecting…");
  });
  for (const type of TYPES) stream.addEventListener(type, onEvent);
  stream.start();
}

// -- rendering ------------------------------------------------------------------------

function schedule() {
  if (queued) return;
  queued = true;
  requestAnimationFrame(() => {
    queued = false;
    render();
  });
}

function figure(label, field, value, extra) {
  const box = element("div", `figure${extra ? ` ${extra}` : ""}`);
  box.dataset.field = field;
  box.append(element("dt", "", label), element("dd", "", value));
  return box;
}

function percent(ratio) {
  return `${Math.round(ratio * 1000) / 10}%`;
}

function renderQueues(now) {
  const tiles = [...queues.values()].map((queue) => {
    const { row, waiting, today } = queue;
    const oldest = waiting.size ? Math.min(...waiting.values()) : null;
    const tile = element("article", "tile");
    tile.dataset.queue = row.name;
    const level = today.answered ? today.answered_in_sl / today.answered : 1;
    tile.dataset.level = level >= 0.8 ? "good" : level >= 0.6 ? "fair" : "poor";
    tile.dataset.waiting = waiting.size ? "yes" : "no";
    const head = element("h3", "", row.name);
    const figures = element("dl", "figures");
    figures.append(
      figure(t("Waiting"), "waiting", waiting.size, "big"),
      figure(t("Oldest wait"), "oldest", oldest === null ? "–" : clock((now - oldest) / 1000), "big"),
      figure(t("Service level ({s} s)", { s: row.service_level_s }), "service-level", percent(level)),
      figure(t("Answered"), "answered", today.answered),
      figure(t("Abandoned"), "abandoned", today.abandoned),
      figure(t("Offered"), "offered", today.offered),
      figure(t("Available"), "available", row.available),
      figure(t("On a call"), "on-call", row.on_call),
      figure(t("Logged in"), "logged-in", row.logged_in),
    );
    tile.append(head, figures);
    return tile;
  });
  $("queues").replaceChildren(...tiles);
}

function button(label, className, onClick, title) {
  const node = element("button", className, label);
  node.type = "button";
  if (title) node.title = title;
  node.addEventListener("click", onClick);
  return node;
}

function agentRow(username, agent, now) {
  const { row } = agent;
  const tr = element("tr");
  tr.dataset.agent = username;
  tr.dataset.state = row.state;
  const name = element("td");
  name.append(element("span", "", row.name || username));
  if (row.name && row.name !== username) name.append(element("span", "muted small", ` ${username}`));
  const state = element("td");
  state.append(element("span", "state", stateLabel(row.state)));
  if (row.reason) state.append(element("span", "muted small", ` ${row.reason}`));
  const since = element("td", "num", agent.since === null ? "–" : clock((now - agent.since) / 1000));
  since.dataset.field = "since";
  const answered = element("td", "num opt", row.answered_today);
  const actions = element("td", "actions controls");
  if (row.logged_in && !row.paused) {
    actions.append(button(t("Pause"), "secondary small-button", () => control(username, "pause")));
  }
  if (row.paused) {
    actions.append(button(t("Resume"), "secondary small-button", () => control(username, "unpause")));
  }
  if (row.logged_in) {
    actions.append(button(t("Log out"), "quiet small-button", () => control(username, "logout")));
  }
  tr.append(name, state, since, answered, actions);
  return tr;
}

function renderAgents(now) {
  const teams = new Map();
  for (const [username, agent] of agents) {
    const team = agent.row.team || NO_TEAM;
    if (!teams.has(team)) teams.set(team, []);
    teams.get(team).push([username, agent]);
  }
  const order = [...teams.keys()].filter((team) => team !== NO_TEAM).sort();
  if (teams.has(NO_TEAM)) order.push(NO_TEAM); // people without a team come last
  const sections = order.map((team) => {
    const members = teams.get(team).sort(([a], [b]) => a.localeCompare(b));
    const section = element("section", "team");
    section.dataset.team = team;
    const counts = {};
    for (const [, agent] of members) counts[agent.row.state] = (counts[agent.row.state] || 0) + 1;
    const summary = SUMMARY.filter((state) => counts[state])
      .map((state) => t("{n} {state}", { n: counts[state], state: stateLabel(state).toLowerCase() }))
      .join(" · ");
    const title = element("h3", "", team === NO_TEAM ? t(NO_TEAM) : team);
    section.append(title, element("p", "muted small", summary || t("nobody")));
    const table = element("table", "table");
    const head = element("thead");
    const headRow = element("tr");
    for (const [label, className] of [
      ["Agent", "col-agent"],
      ["State", "col-state"],
      ["Time", "col-time num"],
      ["Answered", "col-answered num opt"],
      ["", "col-actions"],
    ]) {
      headRow.append(element("th", className, label && t(label)));
    }
    head.append(headRow);
    const body = element("tbody");
    body.append(...members.map(([username, agent]) => agentRow(username, agent, now)));
    table.append(head, body);
    section.append(table);
    return section;
  });
  $("teams").replaceChildren(...sections);
}

function callRow(call, now) {
  const tr = element("tr");
  tr.dataset.call = call.call_id;
  tr.dataset.agent = call.agent;
  const agent = agents.get(call.agent);
  tr.append(
    element("td", "", agent && agent.row.name ? agent.row.name : call.agent),
    element("td", "", call.caller || "–"),
    element("td", "opt", call.queue || "–"),
    element("td", "num", call.since === null ? "–" : clock((now - call.since) / 1000)),
  );
  const cell = element("td", "actions");
  const mine = monitoring && monitoring.call_id === call.call_id;
  for (const [mode, label] of Object.entries(MODES)) {
    const node = button(t(label), mine && monitoring.mode === mode ? "go small-button" : "secondary small-button", () =>
      monitor(call, mode),
    );
    node.dataset.mode = mode;
    node.disabled = !phoneReady() || (monitoring !== null && !mine);
    if (mine && monitoring.mode === mode) node.setAttribute("aria-pressed", "true");
    cell.append(node);
  }
  if (mine) {
    const stop = button(t("Stop"), "quiet small-button", () => stopMonitor());
    stop.dataset.mode = "stop";
    cell.append(stop);
    const state = monitoring.state in MONITOR_STATE ? t(MONITOR_STATE[monitoring.state]) : monitoring.state;
    cell.append(element("span", "muted small", ` ${state}`));
  }
  tr.append(cell);
  return tr;
}

function renderCalls(now) {
  const rows = [...calls.values()]
    .sort((a, b) => String(a.agent).localeCompare(String(b.agent)))
    .map((call) => callRow(call, now));
  $("calls").replaceChildren(...rows);
  $("calls-empty").hidden = rows.length > 0;
}

function render() {
  if (!me) return;
  const now = Date.now();
  renderQueues(now);
  renderAgents(now);
  renderCalls(now);
  $("clock").textContent = new Date(now).toLocaleTimeString(locale);
}

// -- control and monitoring ------------------------------------------------------------------

async function control(username, action) {
  try {
    const row = await api.agentAction(username, action);
    const agent = agents.get(username);
    if (agent && agent.row.state !== row.state) agent.since = Date.now();
    if (agent) agent.row = row;
    $("agent-error").textContent = "";
    render();
  } catch (error) {
    $("agent-error").textContent = `${username}: ${error.message}`;
  }
}

function phoneReady() {
  return phone !== null && document.body.dataset.phone === "registered";
}

function setMonitoring(value) {
  monitoring = value;
  document.body.dataset.monitor = value ? `${value.mode}-${value.state}` : "none";
  schedule();
}

async function monitor(call, mode) {
  const path = `/api/v1/agents/${encodeURIComponent(call.agent)}/monitor`;
  const changing = monitoring && monitoring.call_id === call.call_id;
  try {
    if (changing) {
      await api.request("POST", path, { mode });
      setMonitoring({ ...monitoring, mode });
    } else {
      setMonitoring({ agent: call.agent, call_id: call.call_id, mode, state: "ringing" });
      await api.request("POST", path, { extension: me.username, mode });
    }
    $("monitor-error").textContent = "";
  } catch (error) {
    if (!changing) setMonitoring(null);
    $("monitor-error").textContent = error.message;
  }
}

async function stopMonitor() {
  if (!monitoring) return;
  try {
    await api.request("DELETE", `/api/v1/agents/${encodeURIComponent(monitoring.agent)}/monitor`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      $("monitor-error").textContent = error.message;
      return;
    }
  }
  if (phone && phone.inCall) phone.hangup();
  setMonitoring(null);
}

async function startPhone() {
  let settings;
  try {
    settings = await api.phone();
  } catch (error) {
    $("phone-state").textContent =
      error instanceof ApiError && error.status === 404
        ? t("none: listening needs a SIP account for this user")
        : error.message;
    document.body.dataset.phone = "none";
    return;
  }
  phone = new SipPhone(settings, $("remote-audio"));
  window.acdPhone = phone; // for the browser tests' audio checks
  phone.addEventListener("state", (e) => {
    document.body.dataset.phone = e.detail.state;
    $("phone-state").textContent = e.detail.state in PHONE ? t(PHONE[e.detail.state]) : e.detail.state;
    schedule();
  });
  phone.addEventListener("incoming", () => {
    // The engine calls this phone to join the call the supervisor chose.
    if (monitoring && monitoring.state === "ringing") phone.answer();
  });
  phone.addEventListener("call", (e) => {
    if (!monitoring) return;
    if (e.detail.state === "talking") setMonitoring({ ...monitoring, state: "connected" });
    else if (e.detail.state === "ended") setMonitoring(null);
  });
  phone.start();
}

// -- big screen -------------------------------------------------------------------------

function setBig(on) {
  document.body.dataset.big = on ? "on" : "off";
  $("big-screen").setAttribute("aria-pressed", on ? "true" : "false");
  $("big-screen").textContent = on ? t("Exit big screen") : t("Big screen");
  const url = new URL(location.href);
  if (on) url.searchParams.set("big", "1");
  else url.searchParams.delete("big");
  history.replaceState(null, "", url);
}

function toggleBig() {
  const on = document.body.dataset.big !== "on";
  setBig(on);
  if (on && document.documentElement.requestFullscreen) {
    document.documentElement.requestFullscreen().catch(() => undefined);
  } else if (!on && document.fullscreenElement) {
    document.exitFullscreen().catch(() => undefined);
  }
}

// -- signing in -------------------------------------------------------------------------

async function start() {
  me = await api.me();
  if (!enterPage(me, "/wallboard/")) return;
  $("board").hidden = false;
  $("big-screen").hidden = false;
  setBig(new URLSearchParams(location.search).get("big") === "1");
  startStream();
  if (me.permissions.includes("calls:monitor")) startPhone();
  else $("phone-state").textContent = t("none: this role may not monitor calls");
  setInterval(render, 1000);
}

async function signOut() {
  if (phone) phone.stop();
  if (stream) stream.stop();
  await signOutAndReload(api);
}

wireSignIn(api, start);
$("sign-out").addEventListener("click", signOut);
$("big-screen").addEventListener("click", toggleBig);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.dataset.big === "on") setBig(false);
});
window.addEventListener("beforeunload", () => {
  if (phone) phone.stop();
});
start().catch((error) => {
  if (!(error instanceof ApiError && error.status === 401)) {
    $("sign-in-error").textContent = error.message;
  }
});
