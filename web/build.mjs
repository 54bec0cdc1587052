// Bundle the browser pages into acd/web/static/ (run by scripts/build-web).
// The output is the same bytes for the same sources and package versions, so
// tests/test_web_pages.py can tell a stale bundle from a fresh one.
import { build } from "esbuild";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "acd", "web", "static");
// A page renamed or dropped must not linger: the output is rebuilt whole.
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: ["agent.js", "wallboard.js", "admin.js", "reports.js"].map((name) => join(here, "src", name)),
  outdir: out,
  bundle: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
});
// A page's "<!-- part: NAME -->" line is replaced by web/src/parts/NAME (its
// first line, a comment saying what it is, left out): the pieces every page
// shares are written once.
const PART = /^[ \t]*<!-- part: ([a-z0-9-]+\.html) -->\n/gm;
async function withParts(text) {
  let result = text;
  for (const [line, name] of text.matchAll(PART)) {
    const part = await readFile(join(here, "src", "parts", name), "utf8");
    result = result.replace(line, part.slice(part.indexOf("\n") + 1));
  }
  return result;
}
for (const page of ["agent.html", "wallboard.html", "admin.html", "reports.html"]) {
  await writeFile(join(out, page), await withParts(await readFile(join(here, "src", page), "utf8")));
}
await copyFile(join(here, "src", "acd.css"), join(out, "acd.css"));
