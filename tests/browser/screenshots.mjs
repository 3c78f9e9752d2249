// Regenerates the README screenshots (docs/*.png) from a running demo server:
//   cargo run --release -- serve --demo &   then   node tests/browser/screenshots.mjs [url] [outdir]
// Desktop width (PHONE=1: phone width too), light and dark: the inbox with its panel open
// and the admin page.
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const host = process.argv[2] || "http://127.0.0.1:8080";
const outDir = process.argv[3] || join(here, "../../docs");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const errors = [];
for (const [w, hgt, suffix] of (process.env.PHONE ? [[1100, 720, ""], [390, 800, "-phone"]] : [[1100, 720, ""]])) {
  for (const scheme of ["light", "dark"]) {
    const page = await browser.newPage({ viewport: { width: w, height: hgt }, colorScheme: scheme });
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${host}/?user=ada`);
    if (suffix) { await page.click(".tg-bell"); }
    await page.waitForSelector(".tg-panel:not([hidden]) .tg-item");
    await page.waitForTimeout(4000);
    await page.screenshot({ path: join(outDir, `inbox-${scheme}${suffix}.png`) });
    await page.goto(`${host}/admin?admin=margaret`);
    await page.waitForSelector("#feed-slot .tg-item");
    await page.waitForTimeout(600);
    await page.screenshot({ path: join(outDir, `admin-${scheme}${suffix}.png`), fullPage: !suffix });
    await page.close();
  }
}
await browser.close();
if (errors.length) { console.error(errors.join("\n")); process.exit(1); }
