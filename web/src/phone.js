// The phone page (/phone/): sign in, the agent's state, one browser phone.
//
// The body's data-phone (registration) and data-call (call state) attributes
// mirror what the page shows, for styling and for the browser tests.

import { Api, ApiError } from "./api.js";
import { SipPhone } from "./sipphone.js";

const api = new Api();
const $ = (id) => document.getElementById(id);
let phone = null;
let user = null;
let timer = null;

const STATUS = {
  "signed-out": "Signed out",
  connecting: "Connecting…",
  registered: "Ready",
  unregistered: "Not registered",
  failed: "Registration failed",
  offline: "Offline, reconnecting…",
};

function log(text) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, document.createTextNode(text));
  $("log").prepend(item);
  while ($("log").children.length > 50) $("log").lastChild.remove();
}

function setPhoneState(state, cause) {
  document.body.dataset.phone = state;
  $("status").textContent = STATUS[state] || state;
  if (cause) log(`${STATUS[state] || state}: ${cause}`);
}

function show(id, visible) {
  $(id).hidden = !visible;
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
  $("dial").hidden = state !== "ended" && state !== "idle";
  $("hold").textContent = state === "held" ? "Resume" : "Hold";
  $("mute").textContent = phone && phone.muted ? "Unmute" : "Mute";
  if (state === "talking" && timer === null) startTimer();
  if (state === "ended" || state === "idle") {
    stopTimer();
    $("call-line").textContent = "No call";
    if (state === "ended") log(`Call ended${cause ? `: ${cause}` : ""}`);
    refreshAgent();
  } else if (state === "calling") {
    $("call-line").textContent = `Calling ${$("dial-number").value}…`;
  } else if (state === "talking" || state === "held") {
    refreshAgent();
  }
}

function startTimer() {
  const began = Date.now();
  const tick = () => {
    const s = Math.floor((Date.now() - began) / 1000);
    $("call-timer").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  tick();
  timer = setInterval(tick, 1000);
}

function stopTimer() {
  if (timer !== null) clearInterval(timer);
  timer = null;
  $("call-timer").textContent = "";
}

function showAgent(agent) {
  $("agent-state").textContent = agent.state.replace("_", " ");
  $("agent-reason").textContent = agent.reason ? `(${agent.reason})` : "";
  document.body.dataset.agent = agent.state;
  $("agent-login").disabled = agent.logged_in;
  $("agent-logout").disabled = !agent.logged_in;
  $("agent-pause").disabled = !agent.logged_in || agent.paused;
  $("agent-unpause").disabled = !agent.paused;
}

async function refreshAgent() {
  if (!user || !user.agent) return;
  try {
    showAgent(await api.agent(user.username));
    $("agent-error").textContent = "";
  } catch (error) {
    $("agent-error").textContent = error.message;
  }
}

async function agentAction(action, body) {
  try {
    showAgent(await api.agentAction(user.username, action, body));
    $("agent-error").textContent = "";
    log(`Agent: ${action}`);
  } catch (error) {
    $("agent-error").textContent = error.message;
  }
}

async function start() {
  const settings = await api.phone();
  user = { username: settings.username, agent: settings.agent };
  $("who").textContent = settings.display_name || settings.username;
  show("sign-in", false);
  show("phone", true);
  show("sign-out", true);
  const reasons = $("pause-reason");
  reasons.replaceChildren(
    ...settings.pause_reasons.map((reason) => {
      const option = document.createElement("option");
      option.value = option.textContent = reason;
      return option;
    }),
  );
  $("agent-title").parentElement.hidden = !settings.agent;
  phone = new SipPhone(settings, $("remote-audio"));
  phone.addEventListener("state", (e) => setPhoneState(e.detail.state, e.detail.cause));
  phone.addEventListener("call", (e) => setCallState(e.detail.state, e.detail.cause));
  phone.addEventListener("incoming", (e) => {
    const { from, display } = e.detail;
    $("call-line").textContent = display ? `${display} <${from}>` : from;
    log(`Incoming call from ${display || from}`);
  });
  phone.start();
  setCallState("idle");
  await refreshAgent();
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  try {
    await api.signIn($("username").value.trim(), $("password").value);
    $("password").value = "";
    await start();
  } catch (error) {
    $("sign-in-error").textContent =
      error instanceof ApiError && error.status === 404
        ? "This user has no phone."
        : error.message;
  }
}

async function signOut() {
  if (phone) phone.stop();
  phone = null;
  try {
    // Leaving the desk: out of the queues too, or calls would wait for a phone
    // that is gone.
    if (user && user.agent && document.body.dataset.agent !== "logged_out") {
      await api.agentAction(user.username, "logout").catch(() => undefined);
    }
    await api.signOut();
  } finally {
    location.reload();
  }
}

function wire() {
  const method = localStorage.getItem("acd.dtmf");
  if (method) $("dtmf-method").value = method;
  $("dtmf-method").addEventListener("change", () =>
    localStorage.setItem("acd.dtmf", $("dtmf-method").value),
  );
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("answer").addEventListener("click", () => phone.answer());
  $("decline").addEventListener("click", () => phone.hangup());
  $("hangup").addEventListener("click", () => phone.hangup());
  $("hold").addEventListener("click", () => phone.toggleHold());
  $("mute").addEventListener("click", () => phone.toggleMute());
  $("keypad").addEventListener("click", (event) => {
    const key = event.target.dataset && event.target.dataset.key;
    if (key) {
      phone.sendDtmf(key, $("dtmf-method").value);
      log(`Key ${key}`);
    }
  });
  $("dial").addEventListener("submit", (event) => {
    event.preventDefault();
    const number = $("dial-number").value.trim();
    if (number) phone.call(number);
  });
  $("agent-login").addEventListener("click", () => agentAction("login"));
  $("agent-logout").addEventListener("click", () => agentAction("logout"));
  $("agent-pause").addEventListener("click", () =>
    agentAction("pause", { reason: $("pause-reason").value }),
  );
  $("agent-unpause").addEventListener("click", () => agentAction("unpause"));
  window.addEventListener("beforeunload", () => {
    if (phone) phone.stop();
  });
}

wire();
// A session from before a reload: go straight to the phone (it registers again).
start().catch((error) => {
  if (!(error instanceof ApiError && error.status === 401)) {
    $("sign-in-error").textContent = error.message;
  }
  setPhoneState("signed-out");
});
