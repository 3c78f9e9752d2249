// Drives the official @knocklabs/node SDK against a Tidings server with translations
// (put there by tests/api/translations.rs): users identified with a `locale`, the
// `translated` workflow triggered through the SDK, each feed item in its language, a
// tenant's override winning for that tenant. Env: KNOCK_API_KEY, KNOCK_BASE_URL.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL });
const pid = process.pid;
const [en, fr, frAcme, none] = ["en", "fr", "fracme", "none"].map((u) => `${u}-${pid}`);
await knock.users.update(en, { name: "Ada", locale: "en" });
await knock.users.update(fr, { name: "Chloé", locale: "fr-CA" });
await knock.users.update(frAcme, { name: "Zoé", locale: "fr" });
await knock.users.update(none, { name: "Nadia" });

await knock.workflows.trigger("translated", { recipients: [en, fr, none], data: { n: 1 } });
await knock.workflows.trigger("translated", { recipients: [frAcme], tenant: "acme", data: { n: 3 } });

const body = async (user) => {
  for (const start = Date.now(); ; ) {
    const page = await knock.users.feeds.listItems(user, "in-app-feed");
    if (page.entries.length > 0) return page.entries[0].blocks[0].rendered;
    if (Date.now() - start > 10_000) throw new Error(`no item for ${user}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};
assert.equal(await body(en), "<p>Hello, Ada! You have 1 message. missing:key</p>\n");
assert.equal(await body(fr), "<p>Bonjour, Chloé ! Vous avez 1 message. missing:key</p>\n");
assert.equal(await body(frAcme), "<p>Salut Zoé, de la part d'Acme ! Vous avez 3 messages. missing:key</p>\n");
assert.equal(await body(none), "<p>Hello, Nadia! You have 1 message. missing:key</p>\n");
console.log("translations sdk: ok");
