// The agent desktop (/agent/): sign in, the agent's state and today's
// figures, the browser phone (or the desk phone), a screen pop when a call
// rings, consult transfer and conference, wrap-up with a code, recent calls.
//
// Live changes come from the engine's event stream (events.js), filtered to
// this agent; nothing here polls. The body's data-phone (registration),
// data-call (the browser call) and data-agent (ACD state) attributes mirror
// what the page shows, for styling and for the browser tests.

import { Api, ApiError } from "./api.js";
import { EventStream } from "./events.js";
import { locale, t, useCatalog } from "./i18n.js";
import zh from "./i18n/zh-agent.js";
import { SipPhone } from "./sipphone.js";
import { $, clock, pageLinks, show, stateLabel, text, wireSignIn } from "./ui.js";

useCatalog(zh); // before any text of this page is looked up

const api = new Api();
const TYPES = ["AgentOffered", "RingAttempt", "AgentStateChanged", "ConsultationChanged", "CallEnded"];
const DONE = new Set(["available", "paused", "logged_out"]);

let settings = null;
let phone = null;
let stream = null;
let view = null; // the agent as /api/v1/agents/{username} last showed it
let stateSince = Date.now();
let offer = null; // the AgentOffered of the call on screen
let lastCall = null; // {call_id, queue} of the call a wrap-up code is for
let callState = "idle";
let callStarted = null;
let onCallSince = null; // when the ACD last put the agent on a call
let wrapUntil = null;
let queues = new Map(); // name -> {wrap_up_codes, wrap_up_code_required}
let recent = []; // the agent's calls today, newest first

// The phone's states as people read them (English; t() gives the page's language).
const STATUS = {
  "signed-out": "Signed out",
  connecting: "Connecting…",
  registered: "Ready",
  unregistered: "Not registered",
  failed: "Registration failed",
  offline: "Offline, reconnecting…",
  desk: "Desk phone",
};

function log(line) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString(locale);
  item.append(time, document.createTextNode(line));
  $("log").prepend(item);
  while ($("log").children.length > 50) $("log").lastChild.remove();
}

function failed(where, error) {
  $(where).textContent = error instanceof Error ? error.message : String(error);
}

// -- the phone --------------------------------------------------------------------

// A cause is one of JsSIP's (JsSIP.C.causes: "Terminated", "Canceled", ...),
// which the catalogue translates like the page's own texts.
function setPhoneState(state, cause) {
  document.body.dataset.phone = state;
  const label = state in STATUS ? t(STATUS[state]) : state;
  $("status").textContent = label;
  if (cause) log(t("{status}: {cause}", { status: label, cause: t(cause) }));
}

function setCallState(state, cause) {
  document.body.dataset.call = state === "ended" ? "idle" : state;
  const ringing = state === "ringing";
  const live = state === "talking" || state === "held";
  show("answer", ringing);
  show("decline", ringing);
  show("hold", live);
  show("mute", live);
  show("hangup", live || state === "calling");
  show("keypad", live);
  show("dtmf-line", live);
  show("transfer", live && !consulting());
  show("dial", state === "ended" || state === "idle");
  $("hold").textContent = state === "held" ? t("Resume") : t("Hold");
  $("mute").textContent = phone && phone.muted ? t("Unmute") : t("Mute");
  if (live && callStarted === null) callStarted = Date.now();
  if (state === "ended" || state === "idle") {
    callStarted = null;
    $("call-timer").textContent = "";
    $("call-line").textContent = t("No call");
    if (state === "ended") {
      log(cause ? t("Call ended: {cause}", { cause: t(cause) }) : t("Call ended"));
    }
  } else if (state === "calling") {
    $("call-line").textContent = t("Calling {number}…", { number: $("dial-number").value });
  } else if (state === "held" && callState !== "held") {
    log(t("Caller on hold"));
  } else if (state === "talking" && callState === "held") {
    log(t("Caller back from hold"));
  }
  callState = state;
}

function startPhone() {
  if (phone || !settings) return;
  phone = new SipPhone(settings, $("remote-audio"));
  phone.addEventListener("state", (e) => setPhoneState(e.detail.state, e.detail.cause));
  phone.addEventListener("call", (e) => setCallState(e.detail.state, e.detail.cause));
  phone.addEventListener("incoming", (e) => {
    const { from, display } = e.detail;
    $("call-line").textContent = display ? `${display} <${from}>` : from;
    log(t("Incoming call from {caller}", { caller: display || from }));
  });
  phone.start();
  setCallState("idle");
}

function stopPhone() {
  if (!phone) return;
  phone.stop();
  phone = null;
  setCallState("idle");
}

function usePhone(browser) {
  localStorage.setItem("acd.phone", browser ? "browser" : "desk");
  $("use-browser").checked = browser;
  document.body.dataset.mode = browser ? "browser" : "desk";
  if (browser) {
    startPhone();
  } else {
    stopPhone();
    setPhoneState("desk");
  }
}

// -- the agent ----------------------------------------------------------------------

function showAgent(agent) {
  const changed = !view || view.state !== agent.state;
  view = agent;
  if (changed) {
    stateSince =
      agent.state === "available" && typeof agent.idle_s === "number"
        ? Date.now() - agent.idle_s * 1000
        : Date.now();
  }
  document.body.dataset.agent = agent.state;
  $("agent-state").textContent = stateLabel(agent.state);
  $("agent-reason").textContent = agent.reason ? t("({reason})", { reason: agent.reason }) : "";
  show("agent-login", !agent.logged_in);
  show("agent-logout", agent.logged_in);
  show("pause-reason", agent.logged_in && !agent.paused);
  show("agent-pause", agent.logged_in && !agent.paused);
  show("agent-unpause", agent.paused);
  $("today-answered").textContent = String(agent.answered_today);
  $("today-talk").textContent = clock(agent.talk_time_s);
  $("today-average").textContent =
    agent.answered_today ? clock(agent.talk_time_s / agent.answered_today) : "–";
  $("today-missed").textContent = String(agent.misses);
  wrapUntil =
    agent.state === "wrap_up" && typeof agent.wrap_up_left_s === "number"
      ? Date.now() + agent.wrap_up_left_s * 1000
      : null;
  showWrapUp(agent);
  if (DONE.has(agent.state) && !(phone && phone.inCall)) hidePop();
  tick();
}

async function refreshAgent() {
  if (!settings || !settings.agent) return;
  try {
    showAgent(await api.agent(settings.username));
    $("agent-error").textContent = "";
  } catch (error) {
    failed("agent-error", error);
  }
}

async function agentAction(action, body) {
  try {
    showAgent(await api.agentAction(settings.username, action, body));
    $("agent-error").textContent = "";
    log(
      action === "pause"
        ? t("Paused ({reason})", { reason: body.reason })
        : view.state
          ? stateLabel(view.state)
          : action,
    );
  } catch (error) {
    failed("agent-error", error);
  }
}

function togglePause() {
  if (!view || !view.logged_in) return;
  if (view.paused) agentAction("unpause");
  else agentAction("pause", { reason: $("pause-reason").value });
}

// -- the screen pop -------------------------------------------------------------------

// The variables as [name, value] pairs (the stream sends an object).
function pairs(variables) {
  if (!variables) return [];
  return Array.isArray(variables) ? variables : Object.entries(variables);
}

function crmLink(event) {
  if (!settings.crm_url) return null;
  const values = {
    caller: event.caller || "",
    caller_name: event.caller_name || "",
    did: event.did || "",
    queue: event.queue || "",
    call_id: event.call_id,
  };
  const variables = Object.fromEntries(pairs(event.variables));
  return settings.crm_url.replace(/\{([^{}]+)\}/g, (_, name) =>
    encodeURIComponent(name.startsWith("var.") ? variables[name.slice(4)] || "" : values[name] || ""),
  );
}

function showPop(event) {
  offer = event;
  lastCall = {
    call_id: event.call_id,
    queue: event.queue,
    caller: event.caller,
    caller_name: event.caller_name,
    transferred: false,
  };
  text("pop-name", event.caller_name || t("Unknown caller"));
  $("pop-number").textContent = event.caller || "";
  text("pop-did", event.did);
  text("pop-queue", event.queue);
  text("pop-waited", clock(event.waited_s));
  text("pop-ivr", (event.ivr_path || []).join(" › "));
  text("pop-digits", event.digits);
  const rows = pairs(event.variables).map(([name, value]) => {
    const row = document.createElement("tr");
    const key = document.createElement("th");
    key.scope = "row";
    key.textContent = name;
    const cell = document.createElement("td");
    cell.textContent = value;
    row.append(key, cell);
    return row;
  });
  $("pop-variables").tBodies[0].replaceChildren(...rows);
  show("pop-variables", rows.length > 0);
  const link = crmLink(event);
  show("pop-crm", link !== null);
  if (link !== null) $("pop-crm").href = link;
  show("pop", true);
  document.body.dataset.pop = event.call_id;
  const caller = event.caller_name || event.caller || t("caller");
  if (!phone) $("call-line").textContent = t("Ringing on your desk phone: {caller}", { caller });
  log(t("Offered: {caller} from {queue}", { caller, queue: event.queue }));
}

function hidePop() {
  offer = null;
  show("pop", false);
  delete document.body.dataset.pop;
}

// -- transfer and consultation ---------------------------------------------------------

function consulting() {
  return !$("consulting").hidden;
}

async function consult() {
  const extension = $("transfer-to").value.trim();
  if (!extension) return;
  try {
    await api.request(
      "POST",
      `/api/v1/agents/${encodeURIComponent(settings.username)}/consult`,
      { extension },
    );
    $("call-error").textContent = "";
  } catch (error) {
    failed("call-error", error);
  }
}

async function consultStep(step) {
  try {
    await api.request(
      "POST",
      `/api/v1/agents/${encodeURIComponent(settings.username)}/consult/${step}`,
    );
    $("call-error").textContent = "";
  } catch (error) {
    failed("call-error", error);
  }
}

function blindTransfer(event) {
  event.preventDefault();
  const target = $("transfer-to").value.trim();
  if (!target || !phone) return;
  phone.transfer(target);
  if (lastCall) lastCall.transferred = true;
  log(t("Transferring to {target}", { target }));
}

// A live consultation's states as people read them.
const CONSULT = {
  ringing: "ringing",
  talking: "talking, the caller on hold",
  conference: "in conference with the caller",
};

// "Consulting 1002: ringing", the colleague in bold, in the page's language.
function showConsultLine(extension, state) {
  const who = $("consult-with");
  const what = $("consult-state");
  who.textContent = extension;
  what.textContent = state;
  const parts = t("Consulting {extension}: {state}").split(/(\{extension\}|\{state\})/);
  $("consult-line").replaceChildren(
    ...parts.map((part) => (part === "{extension}" ? who : part === "{state}" ? what : part)),
  );
}

function showConsultation(event) {
  const live = event.state in CONSULT;
  if (event.state === "completed" && lastCall && lastCall.call_id === event.call_id) {
    lastCall.transferred = true;
  }
  document.body.dataset.consult = event.state;
  show("consulting", live);
  if (live) {
    showConsultLine(event.extension, t(CONSULT[event.state]));
    $("consult-transfer").disabled = event.state === "ringing";
    $("consult-transfer").textContent =
      event.state === "conference" ? t("Leave them talking") : t("Complete transfer");
    show("consult-conference", event.state !== "conference");
    $("consult-conference").disabled = event.state !== "talking";
    $("consult-cancel").textContent =
      event.state === "conference"
        ? t("Drop {extension}", { extension: event.extension })
        : t("Back to caller");
  }
  show("transfer", !live && document.body.dataset.call in { talking: 1, held: 1 });
  // The state as the engine names it (ringing, talking, conference, completed, cancelled, ...).
  log(
    t("Consultation with {extension}: {state}", {
      extension: event.extension,
      state: t(event.state),
    }),
  );
}

// -- wrap-up ------------------------------------------------------------------------------

function showWrapUp(agent) {
  const wrapping = agent.state === "wrap_up";
  show("wrap-up", wrapping);
  if (!wrapping) return;
  const queue = lastCall && queues.get(lastCall.queue);
  const codes = queue ? queue.wrap_up_codes : [];
  const select = $("wrap-code");
  const chosen = select.value;
  select.replaceChildren(
    ...codes.map((code) => {
      const option = document.createElement("option");
      option.value = option.textContent = code;
      return option;
    }),
  );
  if (codes.includes(chosen)) select.value = chosen;
  show("wrap-form", codes.length > 0);
  $("wrap-end").disabled = Boolean(agent.wrap_up_code_due);
  show("wrap-due", Boolean(agent.wrap_up_code_due));
}

async function saveCode(event) {
  event.preventDefault();
  const code = $("wrap-code").value;
  if (!code) return;
  try {
    await api.request("POST", `/api/v1/agents/${encodeURIComponent(settings.username)}/wrap-up`, {
      code,
    });
    $("wrap-error").textContent = "";
    log(t("Wrap-up code: {code}", { code }));
    const row = lastCall && recent.find((call) => call.call_id === lastCall.call_id);
    if (row) row.wrap_up_code = code;
    showRecent();
    await refreshAgent();
  } catch (error) {
    failed("wrap-error", error);
  }
}

async function endWrapUp() {
  try {
    showAgent(
      await api.request(
        "POST",
        `/api/v1/agents/${encodeURIComponent(settings.username)}/wrap-up`,
        { end: true },
      ),
    );
    $("wrap-error").textContent = "";
  } catch (error) {
    failed("wrap-error", error);
  }
}

// -- recent calls ----------------------------------------------------------------------------

// A call's disposition as people read it.
const OUTCOME = {
  answered: "Answered",
  transferred: "Transferred",
  abandoned: "Abandoned",
  failed: "Failed",
  callback: "Callback",
  timeout: "Timed out",
};

function showRecent() {
  const rows = recent.slice(0, 10).map((call) => {
    const row = document.createElement("tr");
    const when = call.arrived_at ? new Date(call.arrived_at).toLocaleTimeString(locale) : "";
    const talk =
      call.answered_at && call.ended_at
        ? clock((Date.parse(call.ended_at) - Date.parse(call.answered_at)) / 1000)
        : typeof call.talk_s === "number"
          ? clock(call.talk_s)
          : "–";
    for (const value of [
      when,
      call.caller_name || call.caller_number || "–",
      call.queue || "–",
      talk,
      call.disposition in OUTCOME ? t(OUTCOME[call.disposition]) : call.disposition,
      call.wrap_up_code || "",
    ]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    row.dataset.callId = call.call_id;
    return row;
  });
  $("recent").replaceChildren(...rows);
  show("recent-empty", rows.length === 0);
}

async function refreshRecent() {
  if (!settings || !settings.agent) return;
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  const query = new URLSearchParams({
    agent: settings.username,
    since: midnight.toISOString(),
    limit: "200",
  });
  try {
    const page = await api.request("GET", `/api/v1/calls?${query}`);
    const stored = page.calls.reverse();
    // Calls that ended here but are not stored yet stay on the list.
    const known = new Set(stored.map((call) => call.call_id));
    recent = [...recent.filter((call) => call.pending && !known.has(call.call_id)), ...stored];
    showRecent();
  } catch (error) {
    log(t("Recent calls: {error}", { error: error.message }));
  }
}

// The agent's part of a call is over (on_call to wrap-up or available): list
// it now, from the pop and the page's own clock; the stored record comes on
// the next resync (it is written when the whole call ends, perhaps later,
// with a colleague who took a transfer).
function segmentEnded() {
  if (!lastCall || recent.some((call) => call.call_id === lastCall.call_id)) return;
  recent.unshift({
    call_id: lastCall.call_id,
    arrived_at: new Date(onCallSince || Date.now()).toISOString(),
    caller_number: lastCall.caller,
    caller_name: lastCall.caller_name,
    queue: lastCall.queue,
    talk_s: onCallSince !== null ? (Date.now() - onCallSince) / 1000 : null,
    disposition: lastCall.transferred ? "transferred" : "answered",
    wrap_up_code: null,
    pending: true,
  });
  showRecent();
}

function callEnded(event) {
  const row = recent.find((call) => call.call_id === event.call_id);
  if (row && row.pending && row.disposition !== "transferred") {
    row.disposition = event.disposition;
    showRecent();
  }
}

async function refreshQueues() {
  try {
    const data = await api.request("GET", "/api/v1/queues");
    queues = new Map(data.queues.map((queue) => [queue.name, queue]));
  } catch {
    queues = new Map();
  }
}

// -- the event stream --------------------------------------------------------------------------

function startStream() {
  stream = new EventStream({ agent: settings.username, types: TYPES });
  const resync = () => Promise.all([refreshQueues(), refreshRecent()]).then(refreshAgent);
  stream.addEventListener("open", () => {
    document.body.dataset.stream = "open";
    resync();
  });
  stream.addEventListener("gap", resync);
  stream.addEventListener("closed", () => {
    document.body.dataset.stream = "closed";
  });
  stream.addEventListener("AgentOffered", (e) => showPop(e.detail));
  stream.addEventListener("RingAttempt", (e) => {
    const event = e.detail;
    if (event.outcome !== "answered" && offer && offer.call_id === event.call_id) {
      // The outcome as the engine names it (rejected, no-answer, failed, cancelled).
      log(t("Not answered ({outcome})", { outcome: t(event.outcome) }));
      hidePop();
    }
  });
  stream.addEventListener("AgentStateChanged", (e) => {
    const event = e.detail;
    if (event.new === "on_call") onCallSince = Date.now();
    if (event.old === "on_call") segmentEnded();
    if (event.new === "wrap_up" || DONE.has(event.new)) show("consulting", false);
    refreshAgent();
  });
  stream.addEventListener("ConsultationChanged", (e) => showConsultation(e.detail));
  stream.addEventListener("CallEnded", (e) => callEnded(e.detail));
  stream.start();
}

// -- the page ----------------------------------------------------------------------------------

function tick() {
  $("agent-since").textContent = view
    ? t("for {time}", { time: clock((Date.now() - stateSince) / 1000) })
    : "";
  $("wrap-left").textContent =
    wrapUntil !== null ? t("{time} left", { time: clock((wrapUntil - Date.now()) / 1000) }) : "";
  if (callStarted !== null) $("call-timer").textContent = clock((Date.now() - callStarted) / 1000);
}

async function start() {
  settings = await api.phone();
  $("who").textContent = settings.display_name || settings.username;
  api.me().then((me) => pageLinks(me, "/agent/"), () => undefined);
  show("sign-in", false);
  show("desk", true);
  show("sign-out", true);
  $("pause-reason").replaceChildren(
    ...settings.pause_reasons.map((reason) => {
      const option = document.createElement("option");
      option.value = option.textContent = reason;
      return option;
    }),
  );
  for (const id of ["agent-card", "wrap-up", "recent-card"]) {
    if (!settings.agent) show(id, false);
  }
  usePhone(localStorage.getItem("acd.phone") !== "desk");
  setInterval(tick, 1000);
  if (settings.agent) startStream();
}

async function signOut() {
  stopPhone();
  if (stream) stream.stop();
  try {
    // Leaving the desk: out of the queues too, or calls would wait for a phone
    // that is gone.
    if (settings && settings.agent && view && view.logged_in) {
      await api.agentAction(settings.username, "logout").catch(() => undefined);
    }
    await api.signOut();
  } finally {
    location.reload();
  }
}

function shortcut(event) {
  if (!event.altKey || event.ctrlKey || event.metaKey || !settings) return;
  const key = event.key.toLowerCase();
  if (key === "a" && phone && document.body.dataset.call === "ringing") phone.answer();
  else if (key === "h" && phone && phone.inCall) phone.hangup();
  else if (key === "p") togglePause();
  else return;
  event.preventDefault();
}

function wire() {
  const method = localStorage.getItem("acd.dtmf");
  if (method) $("dtmf-method").value = method;
  $("dtmf-method").addEventListener("change", () =>
    localStorage.setItem("acd.dtmf", $("dtmf-method").value),
  );
  wireSignIn(api, start, (error) =>
    error instanceof ApiError && error.status === 404 ? t("This user has no phone.") : error.message,
  );
  $("sign-out").addEventListener("click", signOut);
  $("use-browser").addEventListener("change", () => usePhone($("use-browser").checked));
  $("answer").addEventListener("click", () => phone && phone.answer());
  $("decline").addEventListener("click", () => phone && phone.hangup());
  $("hangup").addEventListener("click", () => phone && phone.hangup());
  $("hold").addEventListener("click", () => phone && phone.toggleHold());
  $("mute").addEventListener("click", () => phone && phone.toggleMute());
  $("keypad").addEventListener("click", (event) => {
    const key = event.target.dataset && event.target.dataset.key;
    if (key && phone) {
      phone.sendDtmf(key, $("dtmf-method").value);
      log(t("Key {key}", { key }));
    }
  });
  $("dial").addEventListener("submit", (event) => {
    event.preventDefault();
    const number = $("dial-number").value.trim();
    if (number && phone) phone.call(number);
  });
  $("transfer").addEventListener("submit", blindTransfer);
  $("consult").addEventListener("click", consult);
  $("consult-transfer").addEventListener("click", () => consultStep("transfer"));
  $("consult-conference").addEventListener("click", () => consultStep("conference"));
  $("consult-cancel").addEventListener("click", () => consultStep("cancel"));
  $("wrap-form").addEventListener("submit", saveCode);
  $("wrap-end").addEventListener("click", endWrapUp);
  $("agent-login").addEventListener("click", () => agentAction("login"));
  $("agent-logout").addEventListener("click", () => agentAction("logout"));
  $("agent-pause").addEventListener("click", () =>
    agentAction("pause", { reason: $("pause-reason").value }),
  );
  $("agent-unpause").addEventListener("click", () => agentAction("unpause"));
  document.addEventListener("keydown", shortcut);
  window.addEventListener("beforeunload", () => {
    if (phone) phone.stop();
  });
}

wire();
// A session from before a reload: straight to the desk (the phone registers again).
start().catch((error) => {
  if (!(error instanceof ApiError && error.status === 401)) {
    $("sign-in-error").textContent = error.message;
  }
  setPhoneState("signed-out");
});
