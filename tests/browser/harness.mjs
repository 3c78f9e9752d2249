// What the browser scripts (run.mjs, batch.mjs, object_feed.mjs) share: failing with the
// script's name and the right exit code (2 = the tooling itself is missing), required
// environment, Chromium and its flags, the official client's page bundled in memory, and
// a local static server for the page (its origin differs from the API's, as a real app's).
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** `fail(message, code = 1)` and `need(envName)` for the script called `name`; exits 2
 * at once when Chromium is missing. */
export function harness(name) {
  const fail = (message, code = 1) => {
    console.error(`${name} FAILED: ${message}`);
    process.exit(code);
  };
  const need = (env) => {
    const value = process.env[env];
    if (!value) fail(`environment variable ${env} is not set`, 2);
    return value;
  };
  if (!existsSync(CHROMIUM)) fail(`chromium not found at ${CHROMIUM} (apt-get install chromium)`, 2);
  return { fail, need };
}

/** An npm package of tests/browser, or exit 2 naming the install that is missing. */
export function requirePackage(name, fail) {
  return import(name).catch(() => fail("npm packages missing: run `npm ci` in tests/browser", 2));
}

/** page/index.html and page/app.js (with @knocklabs/client) bundled in memory. */
export async function clientPage(fail) {
  const { build } = await requirePackage("esbuild", fail);
  const bundled = await build({
    entryPoints: [join(here, "page/app.js")],
    bundle: true, format: "esm", platform: "browser", write: false, logLevel: "silent",
  });
  return {
    html: readFileSync(join(here, "page/index.html"), "utf8"),
    bundle: bundled.outputFiles[0].text,
  };
}

/** Serves `html` at `/` (and `/index.html`) and, when given, `bundle` at `/bundle.js`, on
 * a free local port; resolves to `{ server, pageUrl }` (close the server when done). */
export async function servePage(html, bundle) {
  const server = createServer((req, res) => {
    if (bundle !== undefined && req.url === "/bundle.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(bundle);
    } else if (req.url === "/favicon.ico") {
      res.writeHead(204);
      res.end();
    } else if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(html);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { server, pageUrl: `http://127.0.0.1:${server.address().port}/` };
}
