// The pages' languages: English, in which they are written, and Simplified
// Chinese. The English text is the key: `t("Sign in")` is the text in the
// chosen language, `t("{n} waiting", { n: 3 })` fills the braces. The static
// HTML marks its texts with data-i18n (the element's own text) and
// data-i18n-attr="title aria-label placeholder" (those attributes), which
// translatePage() replaces once at start.
//
// The language is the user's choice (the header's switch, kept in
// localStorage), else the browser's first language that is Chinese or
// English. A text missing from a catalogue shows in English and is noted in
// window.acdMissing, which the browser tests read.

import common from "./i18n/zh-common.js";

// Each page has its own catalogue over the shared one, given by the page's
// script (useCatalog) before it translates anything: the same English can
// read differently on two pages ("Time" is a call's arrival on the desktop,
// time in a state on the wallboard), neither page overrides the other, and
// each bundle carries only its own.
let page = {};

export function useCatalog(zh) {
  page = zh;
}

const NAMES = { en: "English", zh: "中文" };
const TAGS = { en: "en", zh: "zh-CN" };
const missing = new Set();
window.acdMissing = missing;

function choose() {
  const stored = localStorage.getItem("acd.lang");
  if (stored && stored in NAMES) return stored;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = tag.toLowerCase().split("-")[0];
    if (base in NAMES) return base;
  }
  return "en";
}

export const lang = choose();

// The BCP 47 tag of the language, for dates and numbers (toLocaleString).
export const locale = TAGS[lang];

export function t(text, values) {
  let found = text;
  if (lang === "zh") {
    if (Object.prototype.hasOwnProperty.call(page, text)) found = page[text];
    else if (Object.prototype.hasOwnProperty.call(common, text)) found = common[text];
    else missing.add(text);
  }
  if (!values) return found;
  return found.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// The static texts of the page, in the chosen language, and the switch.
export function translatePage() {
  document.documentElement.lang = TAGS[lang];
  for (const node of document.querySelectorAll("[data-i18n]")) {
    if (!node.dataset.i18nSource) node.dataset.i18nSource = node.textContent.trim();
    node.textContent = t(node.dataset.i18nSource);
  }
  for (const node of document.querySelectorAll("[data-i18n-attr]")) {
    for (const name of node.dataset.i18nAttr.split(" ")) {
      const key = `i18nSource${name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`;
      if (!node.dataset[key]) node.dataset[key] = node.getAttribute(name) || "";
      if (node.dataset[key]) node.setAttribute(name, t(node.dataset[key]));
    }
  }
  document.title = t(document.title);
  const button = document.getElementById("language");
  if (button) {
    const other = lang === "en" ? "zh" : "en";
    button.textContent = NAMES[other];
    button.lang = TAGS[other];
    button.setAttribute("aria-label", other === "en" ? "Switch to English" : "切换到中文");
    button.hidden = false;
    button.addEventListener("click", () => {
      localStorage.setItem("acd.lang", other);
      // A reload would end the browser phone's call: then the choice waits for the next page.
      const call = document.body.dataset.call;
      if (call && call !== "idle") button.title = t("The language changes after this call");
      else location.reload();
    });
  }
}
