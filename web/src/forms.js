// Forms made from a list of fields, for the admin pages: each field says its
// key in the API's body, its label and its kind; the form reads back the
// body to send and shows the API's validation errors next to the field they
// name. The defaults shown as placeholders come from the engine's own
// OpenAPI schema, so the page never restates them.
//
// Kinds: text, password, number, bool, select ({options}), list (names
// separated by commas), map (name -> number, e.g. skills and their levels),
// pairs (name -> text, e.g. call variables), json (a JSON value, for nested
// settings such as escalation steps), checks ({options}: the ones ticked, as
// a list).

import { t } from "./i18n.js";
import { element } from "./ui.js";

let serial = 0;

// Problems the form finds itself, before anything is sent: [{field, message}].
export class FormProblems extends Error {
  constructor(problems) {
    super(problems.map((p) => p.message).join("; "));
    this.problems = problems;
  }
}

function options(field) {
  return typeof field.options === "function" ? field.options() : field.options;
}

// Ticks, one per option, read back as the list of those ticked.
function checksEditor(field, value) {
  const box = element("div", "checks");
  const chosen = new Set(value || []);
  for (const option of options(field)) {
    const [optionValue, label] = Array.isArray(option) ? option : [option, option];
    const line = element("label", "check");
    const tick = element("input");
    tick.type = "checkbox";
    tick.value = optionValue;
    tick.checked = chosen.has(optionValue);
    line.append(tick, document.createTextNode(" " + label));
    box.append(line);
  }
  box.read = () => [...box.querySelectorAll("input:checked")].map((tick) => tick.value);
  return box;
}

function controlFor(field, value, fallback) {
  const id = `f-${++serial}`;
  let input;
  if (field.kind === "bool") {
    input = element("input");
    input.type = "checkbox";
    input.checked = value === undefined || value === null ? Boolean(fallback) : Boolean(value);
  } else if (field.kind === "select") {
    input = element("select");
    if (!field.required) input.append(new Option(field.none || "–", ""));
    for (const option of options(field)) {
      const [optionValue, label] = Array.isArray(option) ? option : [option, option];
      input.append(new Option(label, optionValue));
    }
    input.value = value === undefined || value === null ? (field.required ? (fallback ?? "") : "") : String(value);
  } else if (field.kind === "json") {
    input = element("textarea");
    input.rows = 3;
    input.value = value === undefined || value === null || (Array.isArray(value) && !value.length) ? "" : JSON.stringify(value);
    if (fallback !== undefined) input.placeholder = JSON.stringify(fallback);
  } else {
    input = element("input");
    input.type = field.kind === "number" ? "number" : field.kind === "password" ? "password" : "text";
    if (field.kind === "number") input.step = field.step || "any";
    if (field.kind === "password") input.autocomplete = "new-password";
    if (field.kind === "list") input.value = Array.isArray(value) ? value.join(", ") : "";
    else input.value = value === undefined || value === null ? "" : String(value);
    const shown = field.placeholder ?? (fallback === undefined || fallback === null ? "" : String(fallback));
    if (shown) input.placeholder = shown;
  }
  input.id = id;
  input.name = field.key;
  if (field.readonly) input.disabled = true;
  return { id, input };
}

// A map editor: one row per name with its value, a button to add a row.
function mapEditor(field, value) {
  const box = element("div", "map");
  const rows = element("div", "map-rows");
  const add = element("button", "quiet small-button", field.add || t("Add"));
  add.type = "button";
  const row = (name = "", amount = "") => {
    const line = element("div", "map-row");
    const key = element("input");
    key.value = name;
    key.setAttribute("aria-label", t("{field}: name", { field: field.label }));
    key.className = "map-key";
    const val = element("input");
    val.type = field.kind === "map" ? "number" : "text";
    if (field.kind === "map") {
      val.step = field.step || "1";
      if (field.min !== undefined) val.min = String(field.min);
      if (field.max !== undefined) val.max = String(field.max);
    }
    val.value = amount === "" ? "" : String(amount);
    val.setAttribute("aria-label", `${field.label}: ${field.valueLabel || t("value")}`);
    val.className = "map-value";
    const drop = element("button", "quiet small-button", "×");
    drop.type = "button";
    drop.title = t("Remove");
    drop.setAttribute("aria-label", t("Remove from {field}", { field: field.label }));
    drop.addEventListener("click", () => line.remove());
    line.append(key, val, drop);
    rows.append(line);
    return key;
  };
  for (const [name, amount] of Object.entries(value || {})) row(name, amount);
  add.addEventListener("click", () => row().focus());
  box.append(rows, add);
  box.read = () => {
    const out = {};
    for (const line of rows.children) {
      const [key, val] = line.querySelectorAll("input");
      const name = key.value.trim();
      if (!name) continue;
      out[name] = field.kind === "map" ? (val.value === "" ? val.value : Number(val.value)) : val.value;
    }
    return out;
  };
  return box;
}

function readControl(field, control) {
  if (field.kind === "map" || field.kind === "pairs" || field.kind === "checks") return control.read();
  const input = control;
  if (field.kind === "bool") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return null;
  if (field.kind === "number") return Number(raw);
  if (field.kind === "list") return raw.split(",").map((part) => part.trim()).filter(Boolean);
  if (field.kind === "json") {
    try {
      return JSON.parse(raw);
    } catch {
      throw new FormProblems([{ field: field.key, message: t("not valid JSON") }]);
    }
  }
  return field.kind === "password" ? input.value : raw;
}

function same(a, b) {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

// An empty map or list is the default, as absent is.
function empty(value) {
  if (value === null || value === undefined) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === "object" && Object.keys(value).length === 0;
}

export class FieldForm {
  // fields: the field list; values: the entry as the API shows it (null to
  // create one); defaults: key -> the schema's default.
  constructor(fields, values, defaults = {}) {
    this.fields = fields;
    this.values = values;
    this.defaults = defaults;
    this.controls = new Map();
    this.node = element("div", "fields");
    let group = null;
    for (const field of fields) {
      if (field.group) {
        group = element("fieldset", "group");
        group.append(element("legend", null, field.group));
        this.node.append(group);
        continue;
      }
      if (field.createOnly && values) continue;
      const box = element("div", `field field-${field.kind}`);
      box.dataset.field = field.key;
      const fallback = defaults[field.key];
      const current = values ? values[field.key] : undefined;
      let control;
      let labelFor;
      if (field.kind === "map" || field.kind === "pairs") {
        control = mapEditor(field, current);
        labelFor = null;
      } else if (field.kind === "checks") {
        control = checksEditor(field, current);
        labelFor = null;
      } else {
        const made = controlFor(field, current, fallback);
        control = made.input;
        labelFor = made.id;
      }
      const label = element(labelFor ? "label" : "span", "label", field.label + (field.required && !values ? " *" : ""));
      if (labelFor) label.htmlFor = labelFor;
      const hintText = values && field.editHint ? field.editHint : field.hint;
      const hint = hintText ? element("small", "hint", hintText) : null;
      const problem = element("small", "problem");
      problem.setAttribute("role", "alert");
      if (field.kind === "bool") {
        const line = element("label", "check");
        line.append(control, document.createTextNode(" " + field.label));
        box.append(line);
      } else {
        box.append(label, control);
      }
      if (hint) box.append(hint);
      box.append(problem);
      (group || this.node).append(box);
      this.controls.set(field.key, { field, control, box, problem });
    }
  }

  // What the form holds, by key (null for an empty field); FormProblems
  // for what cannot be read (JSON that does not parse).
  read() {
    const out = {};
    const problems = [];
    for (const [key, { field, control }] of this.controls) {
      try {
        out[key] = readControl(field, control);
      } catch (error) {
        if (!(error instanceof FormProblems)) throw error;
        problems.push(...error.problems);
      }
    }
    if (problems.length) throw new FormProblems(problems);
    return out;
  }

  // The body of a POST: every field that holds something.
  created() {
    const out = {};
    for (const [key, value] of Object.entries(this.read())) {
      const field = this.controls.get(key).field;
      if (field.kind === "bool" ? same(value, this.defaults[key] ?? false) : empty(value)) continue;
      out[key] = value;
    }
    return out;
  }

  // The body of a merge-patch (RFC 7396) from the entry as loaded: what
  // changed, null for what was emptied (back to its default), and within a
  // map the names removed as null.
  patch() {
    const out = {};
    for (const [key, value] of Object.entries(this.read())) {
      const field = this.controls.get(key).field;
      if (field.readonly) continue;
      const before = this.values ? this.values[key] : undefined;
      if (field.kind === "password") {
        if (value) out[key] = value; // blank keeps the password
        continue;
      }
      if (field.kind === "map" || field.kind === "pairs") {
        const change = {};
        for (const name of Object.keys(before || {})) if (!(name in value)) change[name] = null;
        for (const [name, amount] of Object.entries(value)) {
          if (!same(amount, (before || {})[name])) change[name] = amount;
        }
        if (Object.keys(change).length) out[key] = change;
        continue;
      }
      if (same(value, before) || (empty(value) && empty(before))) continue;
      out[key] = empty(value) && field.kind !== "bool" ? null : value;
    }
    return out;
  }

  clearProblems() {
    for (const { box, problem } of this.controls.values()) {
      box.classList.remove("invalid");
      problem.textContent = "";
      const input = box.querySelector("input, select, textarea");
      if (input) input.removeAttribute("aria-invalid");
    }
  }

  // Shows each problem ({field, message}) beside its field; returns those
  // that name no field of this form, for the form's own error line.
  showProblems(problems) {
    this.clearProblems();
    const left = [];
    let first = null;
    for (const { field, message } of problems) {
      const key = this.keyOf(field);
      const entry = key && this.controls.get(key);
      if (!entry) {
        left.push(message);
        continue;
      }
      // Within a map or a list, say which one: "billing: …", "2: …".
      const inner = String(field).split(".").slice(String(field).split(".").indexOf(key) + 1);
      const text = inner.length ? `${inner.join(".")}: ${message}` : message;
      entry.box.classList.add("invalid");
      entry.problem.textContent = entry.problem.textContent ? `${entry.problem.textContent}; ${text}` : text;
      const input = entry.box.querySelector("input, select, textarea");
      if (input) input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
    if (first) first.focus();
    return left;
  }

  // The form's key for an API field path: "skills.sales" is skills,
  // "routes.2.queue" (a check across entries) is queue.
  keyOf(path) {
    if (!path) return null;
    const parts = String(path).split(".");
    for (let i = 0; i < parts.length; i++) {
      if (this.controls.has(parts[i])) return parts[i];
    }
    return null;
  }
}

// The schema's defaults of a component of the engine's OpenAPI document.
export function defaultsOf(openapi, component) {
  const schema = openapi && openapi.components && openapi.components.schemas[component];
  const out = {};
  for (const [key, property] of Object.entries((schema && schema.properties) || {})) {
    if ("default" in property) out[key] = property.default;
  }
  return out;
}

// The enum of a property (strategies, say), from the same document.
export function choicesOf(openapi, component, key) {
  const schema = openapi && openapi.components && openapi.components.schemas[component];
  const property = schema && schema.properties && schema.properties[key];
  if (!property) return [];
  if (property.enum) return property.enum;
  for (const option of property.anyOf || []) if (option.enum) return option.enum;
  return [];
}
