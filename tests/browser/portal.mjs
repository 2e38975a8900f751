// The portal's flows in a real browser (Debian's Chromium, driven by playwright-core), run by
// `cargo xtask ci` against a live `switchyard serve`:
//
//   PORTAL_URL=http://127.0.0.1:PORT PORTAL_TOKEN=... SCREENSHOTS=dir node portal.mjs
//
// - the operator signs in with the server token, sees every application (one of them named
//   with a <script> that must stay inert), opens one and its endpoints;
// - adds an endpoint through the page (a receiver on loopback, custom headers, one of them a
//   credential whose value no page shows), a message is sent through the API and its
//   successful attempt, with those headers, shows in the message log; the receiver then fails
//   (with a <script> in its answer, which stays inert), the next message's failure shows, the
//   log filtered by status lists it, and the endpoint's health says since when and its chart
//   counts it; the receiver recovers and the page's Resend button
//   delivers it, the health is back; the endpoint's page reveals
//   its secret on request, disables and enables it, recovers, edits its settings and sends
//   an example; the event-type catalogue shows a schema's example; then signs out;
// - a customer follows the portal link of one application: the token leaves the address
//   bar, the application's page opens, and another application's page is a 404;
// - no page breaks the Content-Security-Policy.
// A screenshot of each page goes to SCREENSHOTS.

import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
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

// A receiver on loopback: answers 204 while healthy, 500 with markup in its body when not.
let healthy = true;
const received = [];
const receiver = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => (body += chunk));
  request.on("end", () => {
    received.push({ body, headers: request.headers });
    if (healthy) {
      response.writeHead(204).end();
    } else {
      response
        .writeHead(500, { "content-type": "text/html" })
        .end("<script>window.__pwned = true</script>receiver down");
    }
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const hook = `http://127.0.0.1:${receiver.address().port}/hook`;

/** Reloads `page` until `text` shows (the engine delivers in the background). */
async function until(page, text) {
  for (let i = 0; i < 60; i += 1) {
    if (await page.getByText(text, { exact: false }).count()) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
    await page.reload();
  }
  throw new Error(`"${text}" never showed on ${page.url()}`);
}

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

  // An endpoint added through the page.
  await Promise.all([page.waitForNavigation(), page.click("text=Add endpoint")]);
  await page.fill("#url", hook);
  await page.fill("#description", "Added in the browser");
  await page.fill("#headers", "X-Tenant: a\nAuthorization: Bearer browser-secret");
  await page.screenshot({ path: join(shots, "new-endpoint.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Add endpoint')")]);
  check(await page.getByText(hook).isVisible(), "the endpoint added through the page is listed");
  await Promise.all([page.waitForNavigation(), page.click(`text=${hook}`)]);
  check(await page.getByText("X-Tenant: a").isVisible(), "its plain header shows");
  check(await page.getByText("Authorization: hidden").isVisible(), "its credential header by name");
  check(!(await page.content()).includes("browser-secret"), "and never its value");
  await page.screenshot({ path: join(shots, "endpoint-headers.png"), fullPage: true });

  // A message through the API; its attempt in the log.
  const first = await api("POST", "/api/v1/app/tenant-a/msg", {
    eventType: "invoice.paid",
    payload: { note: "<script>window.__pwned = true</script>", amount: 3 },
  });
  await Promise.all([page.waitForNavigation(), page.click("text=Message log")]);
  check(await page.getByText(first.id).isVisible(), "the message is in the log");
  await page.screenshot({ path: join(shots, "message-log.png"), fullPage: true });
  await page.fill("#after_local", "2999-01-01T00:00");
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Filter')")]);
  check(await page.getByText("No messages.").isVisible(), "a time filter in the future lists none");
  check(new URL(page.url()).searchParams.get("after").endsWith("Z"), "sent as UTC");
  await Promise.all([page.waitForNavigation(), page.click("text=Message log")]);
  await Promise.all([page.waitForNavigation(), page.click(`text=${first.id}`)]);
  await until(page, "HTTP 204");
  check(await page.getByText("delivered").first().isVisible(), "its delivery succeeded");
  const delivered = received[0];
  check(
    delivered.headers["x-tenant"] === "a" &&
      delivered.headers.authorization === "Bearer browser-secret",
    "the receiver got the headers set in the page",
  );
  check(
    await page.getByText('"<script>window.__pwned = true</script>"', { exact: false }).isVisible(),
    "a payload holding markup shows as text",
  );

  // The receiver fails: the failure shows; it recovers: Resend delivers.
  healthy = false;
  const second = await api("POST", "/api/v1/app/tenant-a/msg", {
    eventType: "invoice.paid",
    payload: { amount: 4 },
  });
  await page.goto(`${base}/portal/app/${a.id}/msg/${second.id}`);
  await until(page, "HTTP 500");
  await page.locator("summary", { hasText: "HTTP 500" }).click();
  check(
    await page.getByText("<script>window.__pwned = true</script>receiver down").isVisible(),
    "a response body holding markup shows as text",
  );
  await page.screenshot({ path: join(shots, "message-failed.png"), fullPage: true });
  // The log filtered by status lists the failed attempt.
  await Promise.all([page.waitForNavigation(), page.click("text=Message log")]);
  await page.selectOption("#status", "failed");
  await page.selectOption("#endpoint", { label: `${hook} · Added in the browser` });
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Filter')")]);
  check(
    await page.locator("#attempts").getByText(second.id).isVisible(),
    "the log filtered by status and endpoint shows the failed attempt",
  );
  check(!(await page.locator("#attempts").getByText(first.id).count()), "and not the success");
  await page.screenshot({ path: join(shots, "message-log-failed.png"), fullPage: true });
  const messagePage = `${base}/portal/app/${a.id}/msg/${second.id}`;
  // The endpoint's health shows the failure.
  await Promise.all([page.waitForNavigation(), page.click("text=Endpoints")]);
  await Promise.all([page.waitForNavigation(), page.click(`text=${hook}`)]);
  check(await page.locator("#state").getByText("failing since").isVisible(), "the health says failing since when");
  check(
    await page.locator("#health .meta").getByText("1 succeeded, 1 failed").isVisible(),
    "the chart counts the failure",
  );
  await page.screenshot({ path: join(shots, "health-failing.png"), fullPage: true });
  await page.goto(messagePage);
  healthy = true;
  const row = page.locator("#deliveries tr", { hasText: hook });
  await Promise.all([page.waitForNavigation(), row.locator("button:has-text('Resend')").click()]);
  await until(page, "HTTP 204");
  check(
    await page.locator("#deliveries tr", { hasText: hook }).getByText("delivered").isVisible(),
    "Resend delivered it",
  );
  await page.screenshot({ path: join(shots, "message-resent.png"), fullPage: true });
  check((await page.evaluate(() => window.__pwned)) === undefined, "no payload or answer ran");

  // The endpoint's page: the secret on request, disable and enable, recover.
  await Promise.all([page.waitForNavigation(), page.click("text=Endpoints")]);
  await Promise.all([page.waitForNavigation(), page.click(`text=${hook}`)]);
  check(await page.locator("#state").getByText("healthy").isVisible(), "healthy again");
  check(
    await page.locator("#health .meta").getByText("2 succeeded, 1 failed").isVisible(),
    "the chart counts the resent success",
  );
  check(await page.locator("#health svg rect").count() > 0, "the chart is drawn");
  check(!(await page.locator("#secret").count()), "the secret is hidden until asked for");
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Reveal secret')")]);
  check((await page.locator("#secret").textContent()).startsWith("whsec_"), "Reveal shows it");
  await page.screenshot({ path: join(shots, "endpoint.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Disable')")]);
  check(await page.locator("#settings").getByText("disabled").isVisible(), "Disable disables");
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Enable')")]);
  check(await page.locator("#settings").getByText("enabled").isVisible(), "Enable enables");
  await page.fill("#since_local", "2026-01-01T00:00");
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Recover')")]);
  check(
    await page.getByText("failed messages are being sent again").isVisible(),
    "Recover queues the failed messages since the time given",
  );
  await Promise.all([page.waitForNavigation(), page.click("text=Edit settings")]);
  check(
    (await page.inputValue("#headers")).includes("X-Tenant: a") &&
      !(await page.content()).includes("browser-secret"),
    "the edit form holds the plain header and not the credential's value",
  );
  await page.fill("#description", "Edited in the browser");
  await page.fill("#headers", "X-Tenant: b");
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Save')")]);
  check(await page.getByText("Edited in the browser").isVisible(), "Edit saves the settings");
  check(
    (await page.getByText("X-Tenant: b").isVisible()) &&
      (await page.getByText("Authorization: hidden").isVisible()),
    "a header changed, the hidden one kept",
  );
  await Promise.all([page.waitForNavigation(), page.click("button:has-text('Send example')")]);
  await until(page, "HTTP 204");
  check(await page.getByText('"success": true').isVisible(), "Send example sends svix.ping");

  // The event-type catalogue, with an example.
  await api("POST", "/api/v1/event-type", {
    name: "invoice.paid",
    description: "An invoice was paid",
    schemas: { 1: { type: "object", examples: [{ amount: 3, currency: "EUR" }] } },
  });
  await Promise.all([page.waitForNavigation(), page.click("text=Event types")]);
  check(await page.getByText("An invoice was paid").isVisible(), "the catalogue lists it");
  await page.screenshot({ path: join(shots, "event-types.png"), fullPage: true });
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
  receiver.close();
}
console.log(`screenshots in ${shots}`);
