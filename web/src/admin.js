// The administrators' pages (/admin/): agents, queues, routes and pause
// reasons over /api/v1/config (applied to the running engine at once, no
// restart); teams and skills as the agents and queues make them; users and
// their roles, API keys, webhooks and the audit log.
//
// Each section is a table and a form. The form is made from a field list
// (forms.js) with the schema's defaults as placeholders; a change is sent as
// the API takes it (POST to create, a JSON merge patch to edit, with
// If-Match so that a change made meanwhile by someone else is refused rather
// than overwritten), and the API's validation errors are shown next to the
// field they name. A supervisor (config:read) sees the configuration without
// the buttons that change it; a user with neither config:read nor
// users:admin is refused the page. The body's data-section and data-saved
// attributes mirror the page's state, for the browser tests.

import { Api, ApiError } from "./api.js";
import { locale, t, useCatalog } from "./i18n.js";
import zh from "./i18n/zh-admin.js";
import { FieldForm, FormProblems, choicesOf, defaultsOf } from "./forms.js";
import { $, element, enterPage, signOutAndReload, wireSignIn } from "./ui.js";

useCatalog(zh); // before any text of this page is looked up

const api = new Api();
const ROLES = [
  ["agent", t("Agent")],
  ["team_lead", t("Team lead")],
  ["supervisor", t("Supervisor")],
  ["admin", t("Administrator")],
];

let me = null;
let openapi = null;
let current = null; // the section shown
let cache = {}; // section id -> {rows, revision}

const can = (permission) => Boolean(me && me.permissions.includes(permission));
const enc = encodeURIComponent;

function when(seconds, timeStyle = "short") {
  if (seconds === null || seconds === undefined) return "–";
  const date = new Date(seconds * 1000);
  return date.toLocaleString(locale, { dateStyle: "short", timeStyle });
}

function skillsText(skills) {
  const names = Object.entries(skills || {});
  return names.length ? names.map(([name, level]) => `${name} ${level}`).join(", ") : "–";
}

function routeTarget(route) {
  if (route.queue) return t("queue {name}", { name: route.queue });
  if (route.ivr) return t("IVR {name}", { name: route.ivr });
  if (route.extension) return t("extension {name}", { name: route.extension });
  if (route.hangup) return t("refuse ({status})", { status: route.hangup });
  return "–";
}

// The problems of an API refusal, as [{field, message}].
function problemsOf(error) {
  const body = error instanceof ApiError ? error.body || {} : {};
  if (Array.isArray(body.problems) && body.problems.length) return body.problems;
  if (body.field) return [{ field: body.field, message: body.message }];
  return [{ field: null, message: error.message }];
}

// -- the configuration's sections --------------------------------------------------------

function configSection({ id, title, one, key, component, columns, fields, intro }) {
  return {
    id,
    title,
    one,
    intro,
    need: "config:read",
    key,
    columns,
    fields,
    component,
    writable: () => can("config:admin"),
    async load() {
      const data = await api.request("GET", `/api/v1/config/${id}`);
      return { rows: data[id], revision: data.revision };
    },
    create(body, revision) {
      return api.request("POST", `/api/v1/config/${id}`, body, ifMatch(revision));
    },
    update(row, form, revision) {
      return api.request("PATCH", `/api/v1/config/${id}/${enc(row[key])}`, form.patch(), ifMatch(revision));
    },
    remove(row, revision) {
      return api.request("DELETE", `/api/v1/config/${id}/${enc(row[key])}`, undefined, ifMatch(revision));
    },
  };
}

function ifMatch(revision) {
  return revision === null || revision === undefined ? {} : { "If-Match": `"${revision}"` };
}

const queueNames = () => ((cache.queues && cache.queues.rows) || []).map((q) => q.name);

const AGENTS = configSection({
  id: "agents",
  one: t("agent"),
  title: t("Agents"),
  key: "username",
  component: "NewAgent",
  intro: t("SIP accounts of the people who answer calls. A new agent can register and log in at once."),
  columns: [
    [t("Agent"), (a) => a.username],
    [t("Name"), (a) => a.name],
    [t("Team"), (a) => a.team || "–"],
    [t("Skills"), (a) => skillsText(a.skills)],
    [t("Enabled"), (a) => (a.enabled ? t("yes") : t("no"))],
  ],
  fields: [
    { key: "username", label: t("Extension (SIP user name)"), kind: "text", required: true, readonly: false, hint: t("Digits or letters; the agent's number and sign-in name.") },
    { key: "name", label: t("Name"), kind: "text", placeholder: t("the extension") },
    { key: "password", label: t("SIP password"), kind: "password", required: true, hint: t("At least 8 characters; never shown again."), editHint: t("Leave blank to keep the current one.") },
    { key: "team", label: t("Team"), kind: "text" },
    { key: "skills", label: t("Skills"), kind: "map", min: 1, max: 10, add: t("Add skill"), valueLabel: t("level"), hint: t("Level 1 (novice) to 10.") },
    { key: "max_calls", label: t("Calls at once"), kind: "number", step: "1" },
    { key: "weights", label: t("Share per queue"), kind: "map", step: "any", add: t("Add queue"), valueLabel: t("weight"), hint: t("When several queues wait for this agent (default 1 each).") },
    { key: "enabled", label: t("Enabled (may register, sign in and log in)"), kind: "bool" },
  ],
});

const QUEUES = configSection({
  id: "queues",
  one: t("queue"),
  title: t("Queues"),
  key: "name",
  component: "NewQueue",
  intro: t("Where callers wait for an agent with the skills they need. Changes apply to waiting callers at once; nobody loses their place."),
  columns: [
    [t("Queue"), (q) => q.name],
    [t("Skills"), (q) => skillsText(q.skills)],
    [t("Strategy"), (q) => t(q.strategy)],
    [t("Service level"), (q) => `${q.service_level} s`],
    [t("Max wait"), (q) => `${q.max_wait} s`],
  ],
  fields: [
    { key: "name", label: t("Name"), kind: "text", required: true },
    { group: t("Routing") },
    { key: "skills", label: t("Skills needed"), kind: "map", min: 1, max: 10, add: t("Add skill"), valueLabel: t("minimum level") },
    { key: "strategy", label: t("Strategy"), kind: "select", required: true, options: () => choicesOf(openapi, "NewQueue", "strategy").map((name) => [name, t(name)]) },
    { key: "ring_timeout", label: t("Ring an agent for (s)"), kind: "number" },
    { key: "retry_delay", label: t("Ring again after no answer (s)"), kind: "number" },
    { key: "reject_delay", label: t("Ring again after a rejection (s)"), kind: "number" },
    { key: "max_misses", label: t("Missed rings that pause an agent"), kind: "number", step: "1", hint: t("0 never pauses.") },
    { key: "requeue_window", label: t("Requeue if the agent's leg drops within (s)"), kind: "number" },
    { key: "escalation", label: t("Escalation steps"), kind: "json", hint: t('e.g. [{"after": 60, "skills": {"sales": 2}}]') },
    { group: t("Waiting") },
    { key: "max_wait", label: t("Longest wait (s)"), kind: "number" },
    { key: "on_max_wait", label: t("Then"), kind: "text", hint: t("hangup, callback or queue:NAME") },
    { key: "service_level", label: t("Service level threshold (s)"), kind: "number" },
    { key: "announce_every", label: t("Announce position every (s)"), kind: "number", hint: t("0 turns announcements off.") },
    { key: "join_empty", label: t("Join when no agent who can serve is logged in"), kind: "bool" },
    { key: "join_paused", label: t("Join when every such agent is paused"), kind: "bool" },
    { key: "leave_empty", label: t("Take callers out when the last such agent logs out"), kind: "bool" },
    { group: t("Callbacks") },
    { key: "callback_key", label: t("Key for a callback"), kind: "text", hint: t("One of 0-9, * or #; empty: none.") },
    { key: "callback_attempts", label: t("Dial attempts"), kind: "number", step: "1" },
    { key: "callback_retry_delay", label: t("Between attempts (s)"), kind: "number" },
    { key: "callback_expiry", label: t("A request expires after (s)"), kind: "number" },
    { group: t("Wrap-up") },
    { key: "wrap_up", label: t("Wrap-up time (s)"), kind: "number" },
    { key: "wrap_up_codes", label: t("Wrap-up codes"), kind: "list", hint: t("Names separated by commas.") },
    { key: "wrap_up_code_required", label: t("Wrap-up lasts until a code is given"), kind: "bool" },
  ],
});

const ROUTES = configSection({
  id: "routes",
  one: t("route"),
  title: t("Routes"),
  key: "match",
  component: "NewRoute",
  intro: t("Where a dialled number goes; the first matching route wins (a pattern starts with _, e.g. _8XXX)."),
  columns: [
    [t("#"), (r, index) => String(index)],
    [t("Number"), (r) => r.match],
    [t("Goes to"), routeTarget],
    [t("Recorded"), (r) => (r.record ? t("yes") : t("no"))],
  ],
  fields: [
    { key: "match", label: t("Dialled number or pattern"), kind: "text", required: true },
    { key: "queue", label: t("Queue"), kind: "select", none: t("– not a queue –"), options: queueNames },
    { key: "ivr", label: t("IVR flow"), kind: "text" },
    { key: "extension", label: t("Extension"), kind: "text", hint: t("* is the dialled number itself.") },
    { key: "hangup", label: t("Refuse with SIP status"), kind: "number", step: "1", placeholder: t("e.g. 404") },
    { key: "record", label: t("Record these calls"), kind: "bool" },
    { key: "variables", label: t("Call variables"), kind: "pairs", add: t("Add variable"), valueLabel: t("value") },
    { key: "position", label: t("Place in the order"), kind: "number", step: "1", hint: t("0 is first; empty: last (new) or unchanged.") },
  ],
});
ROUTES.note = t("Give exactly one of: a queue, an IVR flow, an extension, or a SIP status to refuse with.");

// Teams and skills are not entries of their own: they are what the agents
// and queues name. This view gathers them, and links to the entries.
const TEAMS = {
  id: "teams",
  title: t("Teams and skills"),
  need: "config:read",
  intro: t("A team is the team named on its agents; a skill is what agents have and queues need. Edit them on the agents and queues."),
  async render(box) {
    const [agents, queues] = await Promise.all([loadSection(AGENTS), loadSection(QUEUES)]);
    const teams = new Map();
    for (const agent of agents.rows) {
      const team = agent.team || "";
      if (!teams.has(team)) teams.set(team, []);
      teams.get(team).push(agent);
    }
    const teamTable = table(
      [t("Team"), t("Agents"), t("Members")],
      [...teams]
        .sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)))
        .map(([team, members]) => [team || t("No team"), String(members.length), members.map((a) => a.username).join(", ")]),
    );
    teamTable.id = "teams-table";
    const skills = new Map();
    const entry = (name) => {
      if (!skills.has(name)) skills.set(name, { agents: [], queues: [] });
      return skills.get(name);
    };
    for (const agent of agents.rows) {
      for (const [name, level] of Object.entries(agent.skills || {})) entry(name).agents.push(`${agent.username} (${level})`);
    }
    for (const queue of queues.rows) {
      for (const [name, level] of Object.entries(queue.skills || {})) entry(name).queues.push(`${queue.name} (≥ ${level})`);
    }
    const skillTable = table(
      [t("Skill"), t("Agents (level)"), t("Queues (minimum)")],
      [...skills].sort(([a], [b]) => a.localeCompare(b)).map(([name, s]) => [name, s.agents.join(", ") || "–", s.queues.join(", ") || "–"]),
    );
    skillTable.id = "skills-table";
    box.append(element("h3", null, "Teams"), teamTable, element("h3", null, "Skills"), skillTable);
  },
};

const PAUSE_REASONS = {
  id: "pause-reasons",
  title: t("Pause reasons"),
  need: "config:read",
  intro: t("The reasons an agent can give for a pause (the desktop's list, and *21N from a phone for the Nth)."),
  async render(box) {
    const data = await api.request("GET", "/api/v1/config/pause-reasons");
    const fields = [{ key: "pause_reasons", label: t("Reasons"), kind: "list", hint: t("Names separated by commas, in the order agents see them.") }];
    const form = new FieldForm(fields, { pause_reasons: data.pause_reasons });
    const card = element("form", "editor");
    const problem = element("p", "error");
    problem.setAttribute("role", "alert");
    card.append(form.node, problem);
    if (can("config:admin")) {
      const save = element("button", null, t("Save"));
      save.type = "submit";
      card.append(save);
      card.addEventListener("submit", async (event) => {
        event.preventDefault();
        await saving(form, problem, () =>
          api.request("PUT", "/api/v1/config/pause-reasons", { pause_reasons: form.read().pause_reasons || [] }, ifMatch(data.revision)),
        );
      });
    } else {
      for (const input of card.querySelectorAll("input")) input.disabled = true;
    }
    box.append(card);
  },
};

const USERS = {
  id: "users",
  title: t("Users and roles"),
  one: t("user"),
  need: "users:admin",
  key: "username",
  intro: t("Who signs in to the pages and the API, and with what role. An agent signs in with their SIP password unless given one here; changing a password or role ends the user's sessions."),
  columns: [
    [t("User"), (u) => u.username],
    [t("Role"), (u) => (ROLES.find(([v]) => v === u.role) || [u.role, u.role])[1]],
    [t("Team"), (u) => u.team || "–"],
    [t("SIP account"), (u) => (u.agent ? t("yes") : t("no"))],
    [t("Status"), (u) => (u.disabled ? t("disabled") : u.source === "config" ? t("agent (default)") : t("active"))],
  ],
  fields: [
    { key: "username", label: t("User name"), kind: "text", required: true },
    { key: "role", label: t("Role"), kind: "select", required: true, options: ROLES },
    { key: "team", label: t("Team"), kind: "text", hint: t("A team lead sees and acts on this team only.") },
    { key: "password", label: t("Password"), kind: "password", hint: t("Needed unless the user is an agent (who may use their SIP password)."), editHint: t("Leave blank to keep the current one.") },
    { key: "disabled", label: t("Disabled (cannot sign in)"), kind: "bool", editOnly: true },
  ],
  writable: () => true,
  async load() {
    const data = await api.request("GET", "/api/v1/users");
    return { rows: data.users, revision: null };
  },
  create(body) {
    return api.request("POST", "/api/v1/users", body);
  },
  update(row, form) {
    // An agent's implicit user is not stored yet: giving it a role stores it.
    if (row.source === "config") {
      const { disabled, ...body } = form.created();
      return api.request("POST", "/api/v1/users", { ...body, username: row.username });
    }
    return api.request("PATCH", `/api/v1/users/${enc(row.username)}`, form.patch());
  },
  remove(row) {
    return api.request("DELETE", `/api/v1/users/${enc(row.username)}`);
  },
  removable: (row) => row.source !== "config",
};

let newKey = null; // the key just created: shown once

const API_KEYS = {
  id: "api-keys",
  title: t("API keys"),
  one: t("API key"),
  need: "users:admin",
  key: "id",
  intro: t("Keys for integrations (a CRM, a wallboard on a TV): each acts as its owner, within its scopes. A key is shown once, when it is made."),
  columns: [
    [t("Name"), (k) => k.name],
    [t("Owner"), (k) => k.username],
    [t("Scopes"), (k) => k.scopes.join(", ")],
    [t("Last used"), (k) => when(k.last_used_at)],
    [t("Expires"), (k) => (k.expires_at ? when(k.expires_at) : t("never"))],
    [t("Status"), (k) => (k.revoked_at ? t("revoked {when}", { when: when(k.revoked_at) }) : t("active"))],
  ],
  fields: [
    { key: "name", label: t("Name"), kind: "text", required: true },
    { key: "username", label: t("Owner (user name)"), kind: "text", placeholder: t("you") },
    { key: "scopes", label: t("Scopes"), kind: "checks", options: () => permissionNames() },
    { key: "expires_in", label: t("Expires after (days)"), kind: "number", placeholder: t("never") },
  ],
  writable: () => true,
  editable: () => false,
  async load() {
    const data = await api.request("GET", "/api/v1/api-keys");
    return { rows: data.api_keys, revision: null };
  },
  async create(body) {
    const days = body.expires_in;
    const sent = { ...body };
    if (days !== undefined) sent.expires_in = Math.round(days * 86400);
    newKey = await api.request("POST", "/api/v1/api-keys", sent);
    return newKey;
  },
  remove(row) {
    return api.request("DELETE", `/api/v1/api-keys/${enc(row.id)}`);
  },
  removable: (row) => !row.revoked_at,
  removeLabel: t("Revoke"),
  before(box) {
    if (!newKey) return;
    const shown = element("div", "card secret");
    shown.id = "new-key";
    shown.append(
      element("p", null, t("The key \"{name}\" — copy it now, it is not shown again:", { name: newKey.name })),
      element("code", null, newKey.key),
    );
    box.append(shown);
    newKey = null;
  },
};

// The scopes a key may have: what the signed-in admin may do (a key for
// another owner is refused beyond that owner's role, by the API).
function permissionNames() {
  return [...me.permissions].sort();
}

const WEBHOOKS = {
  id: "webhooks",
  title: t("Webhooks"),
  need: "webhooks:read",
  intro: t("Signed event deliveries to other systems, from a durable outbox (configured in the engine's YAML file)."),
  columns: [
    [t("Name"), (w) => w.name],
    [t("URL"), (w) => w.url],
    [t("Events"), (w) => w.events.join(", ") || t("all")],
    [t("Delivered through"), (w) => `#${w.delivered_through}`],
    [t("Pending"), (w) => String(w.pending)],
  ],
  writable: () => false,
  async load() {
    const data = await api.request("GET", "/api/v1/webhooks");
    return { rows: data.webhooks, revision: null };
  },
};

const AUDIT = {
  id: "audit",
  title: t("Audit log"),
  need: "audit:read",
  intro: t("Every change made through the API or these pages (and every refusal), newest first."),
  columns: [
    [t("When"), (e) => when(e.at, "medium")],
    [t("Who"), (e) => `${e.actor || "–"}${e.role ? ` (${e.role})` : ""}`],
    [t("Change"), (e) => e.action],
    [t("Target"), (e) => e.target || "–"],
    [t("Status"), (e) => String(e.status)],
  ],
  writable: () => false,
  async load() {
    const data = await api.request("GET", "/api/v1/audit?limit=200");
    return { rows: data.entries, revision: null };
  },
};

const SECTIONS = [AGENTS, QUEUES, ROUTES, TEAMS, PAUSE_REASONS, USERS, API_KEYS, WEBHOOKS, AUDIT];

// -- drawing ------------------------------------------------------------------------------

function table(headings, rows) {
  const node = element("table", "table");
  const head = element("thead");
  const line = element("tr");
  for (const heading of headings) line.append(element("th", null, heading));
  head.append(line);
  const body = element("tbody");
  for (const row of rows) {
    const tr = element("tr");
    for (const cell of row) tr.append(element("td", null, cell));
    body.append(tr);
  }
  node.append(head, body);
  return node;
}

async function loadSection(section) {
  cache[section.id] = await section.load();
  return cache[section.id];
}

async function saving(form, problem, send) {
  problem.textContent = "";
  form.clearProblems();
  document.body.dataset.saved = "sending";
  try {
    await send();
    document.body.dataset.saved = "yes";
    return true;
  } catch (error) {
    document.body.dataset.saved = "refused";
    if (error instanceof FormProblems) {
      problem.textContent = form.showProblems(error.problems).join("; ");
      return false;
    }
    if (error instanceof ApiError && error.status === 412) {
      problem.textContent = t("Someone changed the configuration since this page loaded: reload the section and make the change again.");
      return false;
    }
    const problems = problemsOf(error);
    if (error instanceof ApiError && error.status === 409 && error.body && error.body.error === "conflict") {
      problems[0].field = problems[0].field || form.fields[0].key;
    }
    problem.textContent = form.showProblems(problems).join("; ");
    return false;
  }
}

function openEditor(section, row, box) {
  const old = $("editor");
  if (old) old.remove();
  const editing = row !== null;
  const card = element("form", "card editor");
  card.id = "editor";
  card.noValidate = true; // the API's checks, next to the field, are the ones that count
  const heading = editing ? `${section.title}: ${row[section.key]}` : t("New {what}", { what: section.one });
  card.append(element("h3", null, heading));
  if (section.note) card.append(element("p", "muted small", section.note));
  const fields = section.fields
    .filter((field) => !(field.editOnly && !editing))
    .map((field) => (editing && field.key === section.key ? { ...field, readonly: true } : field));
  const form = new FieldForm(fields, row, section.component ? defaultsOf(openapi, section.component) : {});
  const problem = element("p", "error");
  problem.id = "editor-error";
  problem.setAttribute("role", "alert");
  const save = element("button", null, editing ? t("Save") : t("Create"));
  save.type = "submit";
  save.id = "editor-save";
  const cancel = element("button", "quiet", t("Cancel"));
  cancel.type = "button";
  cancel.addEventListener("click", () => card.remove());
  const buttons = element("div", "row");
  buttons.append(save, cancel);
  card.append(form.node, problem, buttons);
  card.addEventListener("submit", async (event) => {
    event.preventDefault();
    const revision = cache[section.id] && cache[section.id].revision;
    const done = await saving(form, problem, () => {
      if (editing) return section.update(row, form, revision);
      return section.create(form.created(), revision);
    });
    if (done) await show(section.id);
  });
  box.prepend(card);
  const first = card.querySelector("input:not([disabled]), select, textarea");
  if (first) first.focus();
}

function deleteButton(section, row) {
  const label = section.removeLabel || t("Delete");
  const button = element("button", "quiet small-button", label);
  button.type = "button";
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      // A second press confirms: nothing goes on one stray click.
      armed = true;
      button.textContent = t("{action}: sure?", { action: label });
      button.classList.add("stop");
      setTimeout(() => {
        armed = false;
        button.textContent = label;
        button.classList.remove("stop");
      }, 4000);
      return;
    }
    try {
      await section.remove(row, cache[section.id] && cache[section.id].revision);
      await show(section.id);
    } catch (error) {
      $("section-error").textContent = error.message;
    }
  });
  return button;
}

function drawTable(section, data, box) {
  const writable = section.writable && section.writable();
  const editable = writable && (!section.editable || section.editable());
  const node = element("table", "table entries");
  node.id = `${section.id}-table`;
  const head = element("tr");
  for (const [heading] of section.columns) head.append(element("th", null, heading));
  if (writable && section.fields) head.append(element("th", "actions", ""));
  const thead = element("thead");
  thead.append(head);
  const body = element("tbody");
  data.rows.forEach((row, index) => {
    const tr = element("tr");
    if (section.key) tr.dataset.key = String(row[section.key]);
    for (const [, cell] of section.columns) tr.append(element("td", null, cell(row, index)));
    if (writable && section.fields) {
      const actions = element("td", "actions");
      if (editable) {
        const edit = element("button", "secondary small-button", t("Edit"));
        edit.type = "button";
        edit.addEventListener("click", () => openEditor(section, row, box));
        actions.append(edit);
      }
      if (section.remove && (!section.removable || section.removable(row))) actions.append(deleteButton(section, row));
      tr.append(actions);
    }
    body.append(tr);
  });
  node.append(thead, body);
  if (!data.rows.length) {
    box.append(element("p", "muted", t("None yet.")));
  }
  box.append(node);
}

async function show(id) {
  const section = SECTIONS.find((s) => s.id === id && can(s.need)) || SECTIONS.find((s) => can(s.need));
  current = section;
  document.body.dataset.section = section.id;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const box = $("section");
  box.replaceChildren();
  box.dataset.loaded = "no";
  const content = element("div", "section-body");
  const title = element("div", "section-head");
  title.append(element("h2", null, section.title));
  if (section.fields && section.writable && section.writable() && section.create) {
    const add = element("button", null, t("New"));
    add.type = "button";
    add.id = "new-entry";
    add.addEventListener("click", () => openEditor(section, null, content));
    title.append(add);
  }
  const error = element("p", "error");
  error.id = "section-error";
  error.setAttribute("role", "alert");
  box.append(title, element("p", "muted small", section.intro), error, content);
  try {
    if (section.id === "routes") await loadSection(QUEUES); // the queue choices
    if (section.render) {
      await section.render(content);
    } else {
      if (section.before) section.before(content);
      drawTable(section, await loadSection(section), content);
    }
  } catch (failure) {
    error.textContent = failure.message;
  }
  box.dataset.loaded = "yes";
}

function buildNav() {
  const nav = $("nav");
  nav.replaceChildren();
  for (const section of SECTIONS) {
    if (!can(section.need)) continue;
    const link = element("a", null, section.title);
    link.href = `#${section.id}`;
    link.dataset.section = section.id;
    nav.append(link);
  }
}

// -- signing in --------------------------------------------------------------------------

async function start() {
  me = await api.me();
  if (!enterPage(me, "/admin/")) return;
  $("status").textContent = can("config:admin") ? t("Administrator") : t("Read only");
  openapi = await api.request("GET", "/api/v1/openapi.json").catch(() => null);
  $("admin").hidden = false;
  buildNav();
  await show(location.hash.slice(1));
}

window.addEventListener("hashchange", () => {
  if (me && current && location.hash.slice(1) !== current.id) show(location.hash.slice(1));
});
wireSignIn(api, start);
$("sign-out").addEventListener("click", () => signOutAndReload(api));
start().catch((error) => {
  if (!(error instanceof ApiError && error.status === 401)) {
    $("sign-in-error").textContent = error.message;
  }
});
