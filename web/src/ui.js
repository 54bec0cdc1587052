// Small DOM and formatting helpers every page uses.

import { t, translatePage } from "./i18n.js";

export const $ = (id) => document.getElementById(id);

// An agent's states as people read them (English; t() gives the language's).
const STATES = {
  logged_out: "Logged out",
  available: "Available",
  ringing: "Ringing",
  on_call: "On a call",
  wrap_up: "Wrap-up",
  paused: "Paused",
};

export function stateLabel(state) {
  return state in STATES ? t(STATES[state]) : state;
}

// A role as people read it.
const ROLES = { agent: "agent", team_lead: "team lead", supervisor: "supervisor", admin: "admin" };

export function roleLabel(role) {
  return role in ROLES ? t(ROLES[role]) : role;
}

// Seconds as m:ss, or h:mm:ss from an hour on.
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
  return h ? `${h}:${mmss}` : mmss;
}

// An element's text, with a dash for nothing.
export function text(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "–" : String(value);
}

export function show(id, visible) {
  $(id).hidden = !visible;
}

// A new element with a class and text.
export function element(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined && content !== null) node.textContent = String(content);
  return node;
}

// The page's sign-in form (#sign-in with #username, #password and
// #sign-in-error): signs in through `api`, then runs `start`; `explain`
// words a failure for the form.
export function wireSignIn(api, start, explain = (error) => error.message) {
  translatePage();
  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    try {
      await api.signIn($("username").value.trim(), $("password").value);
      $("password").value = "";
      await start();
    } catch (error) {
      $("sign-in-error").textContent = explain(error);
    }
  });
}

// The pages a user may open, for the header's links between them.
const PAGES = [
  ["/agent/", "Desktop", () => true],
  ["/wallboard/", "Wallboard", (me) => me.role !== "agent" && me.permissions.includes("live:read")],
  ["/reports/", "Reports", (me) => me.permissions.includes("reports:read")],
  ["/admin/", "Admin", (me) => me.permissions.includes("config:read") || me.permissions.includes("users:admin")],
];

// After sign-in: the header's links, who is signed in, and whether their
// role may use page `here` (the same rule as the links); if not, the page's
// #refused says so. Returns whether they may.
export function enterPage(me, here) {
  pageLinks(me, here);
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("who").textContent = `${me.username} (${roleLabel(me.role)})`;
  const page = PAGES.find(([path]) => path === here);
  const allowed = Boolean(page && page[2](me));
  if (!allowed) {
    $("refused").hidden = false;
    $("status").textContent = t("Not allowed");
  }
  return allowed;
}

// Signs out, then loads the page again (its sign-in form).
export async function signOutAndReload(api) {
  try {
    await api.signOut();
  } finally {
    location.reload();
  }
}

// Fills the header's #pages with links to the other pages `me` may open
// (nothing for a user who has only this one).
export function pageLinks(me, here) {
  const nav = $("pages");
  if (!nav) return;
  const allowed = PAGES.filter(([, , may]) => may(me));
  nav.replaceChildren();
  if (allowed.length < 2) return;
  for (const [path, label] of allowed) {
    const link = element("a", null, t(label));
    link.href = path;
    if (path === here) link.setAttribute("aria-current", "page");
    nav.append(link);
  }
}
