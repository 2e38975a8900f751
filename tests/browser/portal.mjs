// The portal's flows in a real browser (Debian's Chromium, driven by playwright-core), run by
// `cargo xtask ci` against a live `switchyard serve`:
//
//   PORTAL_URL=http://127.0.0.1:PORT PORTAL_TOKEN=... SCREENSHOTS=dir node portal.mjs
//
// - the operator signs in with the server token, sees every application (one of them named
//   with a <script> that must stay inert), opens one and its endpoints, and signs out;
// - a customer follows the portal link of one application: the token leaves the address
//   bar, the application's page opens, and another application's page is a 404;
// - no page breaks the Content-Security-Policy.
// A screenshot of each page goes to SCREENSHOTS.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.env.PORTAL_URL;
const token = process.env.PORTAL_TOKEN;
const shots = process.env.SCREENSHOTS ?? "screenshots";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!base || !token) {
  throw new Error("PORTAL_URL and PORTAL_TOKEN must be set");
}
mkdirSync(shots, { recursive: true });

/** Calls the API with the server token; answers the JSON body. */
async function api(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  }
  return response.status === 204 ? null : response.json();
}

function check(condition, what) {
  if (!condition) {
    throw new Error(`failed: ${what}`);
  }
  console.log(`ok: ${what}`);
}

const hostile = "<script>window.__pwned = true</script>Hostile & Co";
const a = await api("POST", "/api/v1/app", { name: "Tenant A", uid: "tenant-a" });
await api("POST", "/api/v1/app", { name: "Tenant B", uid: "tenant-b" });
await api("POST", "/api/v1/app", { name: hostile, uid: "hostile" });
await api("POST", "/api/v1/app/tenant-a/endpoint", {
  url: "https://a.example/hooks",
  description: "Tenant A's receiver",
});
await api("POST", "/api/v1/app/tenant-b/endpoint", { url: "https://b.example/hooks" });
const link = await api("POST", "/api/v1/auth/app-portal-access/tenant-a", {});

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const violations = [];
function watch(page) {
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) {
      violations.push(message.text());
    }
  });
}

try {
  // The operator.
  const operator = await browser.newContext();
  const page = await operator.newPage();
  watch(page);
  await page.goto(`${base}/`);
  check(new URL(page.url()).pathname === "/portal", "/ leads to the portal");
  await page.screenshot({ path: join(shots, "sign-in.png"), fullPage: true });
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  await page.getByRole("link", { name: "Tenant A" }).waitFor();
  check(await page.getByText("Tenant B").isVisible(), "the operator sees every application");
  check(
    await page.getByText(hostile, { exact: false }).isVisible(),
    "an application named with markup shows as text",
  );
  check((await page.evaluate(() => window.__pwned)) === undefined, "its <script> never ran");
  await page.screenshot({ path: join(shots, "applications.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click("text=Tenant A")]);
  check(
    await page.getByText("https://a.example/hooks").isVisible(),
    "an application's page lists its endpoints",
  );
  await page.screenshot({ path: join(shots, "application.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click("text=Sign out")]);
  check(await page.locator("#token").isVisible(), "signing out leads back to sign-in");
  await operator.close();

  // A customer, through the portal link.
  const customer = await browser.newContext();
  const theirs = await customer.newPage();
  watch(theirs);
  await theirs.goto(link.url);
  await theirs.waitForURL(`${base}/portal/app/${a.id}`);
  check(!theirs.url().includes("appsk_"), "the token leaves the address bar");
  check(
    await theirs.getByText("https://a.example/hooks").isVisible(),
    "the link opens its application",
  );
  await theirs.screenshot({ path: join(shots, "customer.png"), fullPage: true });
  const other = await theirs.goto(`${base}/portal/app/tenant-b`);
  check(other.status() === 404, "another application's page is a 404");
  check(!(await theirs.getByText("https://b.example/hooks").count()), "and shows nothing of it");
  await theirs.screenshot({ path: join(shots, "customer-other-app.png"), fullPage: true });
  await customer.close();

  check(violations.length === 0, `no Content-Security-Policy violations ${violations}`);
} finally {
  await browser.close();
}
console.log(`screenshots in ${shots}`);
