// The annotator's pages in headless Chromium (Debian's), driven by playwright-core. Started by
// annotator/tests/browser.rs, which prepares the projects and accounts and passes them in the
// environment. Tests run in order and share the server's state.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOT_DIR;
const MTURK = "https://workersandbox.mturk.com";
const LAPTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});
after(async () => browser && (await browser.close()));

/** A fresh browser profile (own cookies), failing the test on any page error or CSP report. */
async function session(viewport = LAPTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => {
    problems.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });
  return { context, page, problems };
}

async function signInWithPassword(page, worker, password, project) {
  await page.goto(`${BASE}/signin?project=${project}`);
  await page.fill("#worker", worker);
  await page.fill("#password", password);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/p/${project}`);
}

async function signInWithCode(page, code, project) {
  await page.goto(`${BASE}/signin?project=${project}`);
  await page.fill("#code", code.toLowerCase().replaceAll("-", " "));
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/p/${project}`);
}

/** Types a description, waits for the live verdict, submits; returns the set's first image. */
async function describe(page, text) {
  const first = await page.getAttribute("#grid .cell img", "src");
  await page.fill("#description", text);
  try {
    await page.waitForFunction(() => /Looks good/.test(document.querySelector("#verdict").textContent), null, { timeout: 10000 });
  } catch (e) {
    throw new Error(`no "Looks good" for ${JSON.stringify(text)}: verdict ${JSON.stringify(await page.textContent("#verdict"))}`);
  }
  await Promise.all([page.waitForNavigation(), page.click("#submit")]);
  return first;
}

const rejected = {}; // what the requester rejected in "solo": its first image

test("a worker signs in, sees the lease timer, completes 3 tasks and returns one", async () => {
  const { context, page, problems } = await session();
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "solo");
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/solo/task`);
  assert.equal(await page.locator("#grid .cell").count(), 15, "15 exemplars");

  // The lease timer counts down.
  const t0 = await page.textContent("#lease");
  assert.match(t0, /^\d+:\d\d$/);
  await page.waitForFunction((t) => document.querySelector("#lease").textContent !== t, t0, { timeout: 5000 });

  // Live validation speaks the server's rules before a submit.
  await page.fill("#description", "dogs");
  await page.waitForFunction(() => /at least 2 words/.test(document.querySelector("#verdict").textContent));
  assert.equal(await page.$eval("#description", (e) => e.validity.valid), false);

  // The whole task fits a laptop screen: no scrolling to reach the last image or the button.
  const fits = await page.evaluate(() => {
    const cells = document.querySelectorAll("#grid .cell");
    const last = cells[cells.length - 1].getBoundingClientRect();
    const button = document.querySelector("#submit").getBoundingClientRect();
    return { last: last.bottom, button: button.bottom, h: innerHeight, sw: document.documentElement.scrollWidth, w: innerWidth };
  });
  assert.ok(fits.last <= fits.h && fits.button <= fits.h, `fits without scrolling: ${JSON.stringify(fits)}`);
  assert.ok(fits.sw <= fits.w, "no horizontal scrolling");

  // Click to enlarge, keyboard to move and close.
  await page.click("#grid .cell >> nth=2");
  assert.ok(await page.$eval("#lightbox", (d) => d.open));
  await page.keyboard.press("ArrowRight");
  assert.match(await page.getAttribute("#lightbox-img", "src"), /\/images\/[0-9a-f]{64}\.png$/);
  await page.keyboard.press("Escape");
  assert.equal(await page.$eval("#lightbox", (d) => d.open), false);
  await page.screenshot({ path: path.join(SHOTS, "task-laptop.png") });

  // Three tasks; the second is the one the requester will find with markup in it.
  await describe(page, "red circles near the edges");
  await page.waitForURL(`${BASE}/p/solo/task`);
  await describe(page, "<script>alert('x')</script> vertical stripes");
  await page.waitForURL(`${BASE}/p/solo/task`);
  // Submit by keyboard alone: Ctrl+Enter in the box.
  await page.fill("#description", "blue sky above buildings");
  await page.waitForFunction(() => /good/.test(document.querySelector("#verdict").textContent));
  await Promise.all([page.waitForNavigation(), page.press("#description", "Control+Enter")]);
  assert.equal((await page.textContent("#done")).trim(), "3", "three tasks done");

  // Give the fourth set back.
  await page.click("#return");
  await page.waitForURL(/\/p\/solo\?notice=returned/);
  assert.match(await page.textContent(".notice"), /gave the set back/);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the task page reflows on a phone without horizontal scrolling", async () => {
  const { context, page, problems } = await session(PHONE);
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "demo");
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/demo/task`);
  await page.waitForLoadState("networkidle");
  const m = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: innerWidth,
    cols: getComputedStyle(document.querySelector("#grid")).gridTemplateColumns.split(" ").length }));
  assert.ok(m.sw <= m.w, `scrollWidth ${m.sw} > viewport ${m.w}`);
  assert.equal(m.cols, 3, "three columns on a phone");
  await page.screenshot({ path: path.join(SHOTS, "task-phone.png"), fullPage: true });
  await page.click("#return");
  assert.deepEqual(problems, []);
  await context.close();
});

test("a task can be done by keyboard alone", async () => {
  const { context, page, problems } = await session();
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "demo");
  // The start button has focus on arrival; Enter starts.
  assert.equal(await page.evaluate(() => document.activeElement.id), "start");
  await Promise.all([page.waitForURL(`${BASE}/p/demo/task`), page.keyboard.press("Enter")]);
  // The text box has focus: type, then Ctrl+Enter submits.
  assert.equal(await page.evaluate(() => document.activeElement.id), "description");
  await page.keyboard.type("yellow triangles in corners");
  await page.waitForFunction(() => /Looks good/.test(document.querySelector("#verdict").textContent));
  const before = await page.getAttribute("#grid .cell img", "src");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Control+Enter")]);
  assert.notEqual(await page.getAttribute("#grid .cell img", "src"), before, "on to the next set");
  // Tab reaches the images; Enter enlarges, Escape closes and gives focus back.
  await page.focus("#grid .cell >> nth=0");
  await page.keyboard.press("Enter");
  assert.ok(await page.$eval("#lightbox", (d) => d.open));
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.index), "0");
  await page.click("#return");
  assert.deepEqual(problems, []);
  await context.close();
});

test("an MTurk preview shows the task but cannot submit; an accepted HIT posts back to MTurk", async () => {
  const { context, page, problems } = await session();
  const preview = await page.goto(`${BASE}/mturk/demo?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1&turkSubmitTo=${encodeURIComponent(MTURK)}`);
  assert.match(preview.headers()["content-security-policy"], /frame-ancestors https:\/\/www\.mturk\.com https:\/\/workersandbox\.mturk\.com/);
  assert.equal(await page.locator("#grid .cell").count(), 15);
  assert.ok(await page.isDisabled("#submit"), "submit disabled in preview");
  assert.ok(await page.isDisabled("#description"), "text box disabled in preview");
  assert.match(await page.textContent("#preview-note"), /Preview/);
  await page.click("#submit", { force: true });
  assert.equal(page.url(), preview.url(), "a click in preview goes nowhere");
  // Nor can the server be tricked: a POST to the preview form's target stores nothing.
  const forged = await page.evaluate(async () => (await fetch("/a/none/submit", { method: "POST", redirect: "manual",
    headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "description=red+circles" })).status);
  assert.notEqual(forged, 200);

  // An accepted HIT: the worker describes, and the browser posts to MTurk's externalSubmit.
  let posted = null;
  await context.route(`${MTURK}/**`, async (route) => {
    posted = { url: route.request().url(), body: route.request().postData() };
    await route.fulfill({ status: 200, contentType: "text/html", body: "<p>MTurk got it</p>" });
  });
  await page.goto(`${BASE}/mturk/demo?assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=${encodeURIComponent(MTURK)}`);
  assert.ok(!(await page.isDisabled("#submit")));
  await page.fill("#description", "green leaves on trees");
  await page.click("#submit");
  await page.waitForURL(`${MTURK}/mturk/externalSubmit`);
  assert.ok(posted, "posted to MTurk");
  assert.match(posted.body, /assignmentId=A1/);
  assert.match(posted.body, /description=green\+leaves\+on\+trees/);
  assert.deepEqual(problems, []);
  await context.close();
});

test("a Prolific participant works and finishes on the study's completion URL", async () => {
  const { context, page, problems } = await session();
  await page.goto(`${BASE}/prolific/demo?PROLIFIC_PID=P123&STUDY_ID=S1&SESSION_ID=X9`);
  await page.waitForURL(`${BASE}/p/demo`);
  assert.match(await page.textContent(".stats"), /prolific:P123/);
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/demo/task`);
  await describe(page, "orange squares with dots");
  await page.click("#return");
  await page.waitForURL(/\/p\/demo\?notice=returned/);
  assert.equal(await page.getAttribute("#prolific-finish", "href"),
    "https://app.prolific.com/submissions/complete?cc=C0MPL3TE");
  // Ids that are not Prolific's are refused.
  const bad = await page.goto(`${BASE}/prolific/demo?PROLIFIC_PID=%3Cx%3E&STUDY_ID=S1&SESSION_ID=X9`);
  assert.equal(bad.status(), 400);
  assert.deepEqual(problems, []);
  await context.close();
});

test("a worker fails the qualification test, waits, then passes and can work", async () => {
  const { context, page, problems } = await session();
  await signInWithCode(page, process.env.QUINN_CODE, "gated");
  // Accept is refused until the test is passed.
  await page.click("#take-test");
  await page.waitForURL(`${BASE}/p/gated/qualification`);
  const right = process.env.QUAL_ANSWERS.split(",").map(Number);
  const questions = await page.locator("fieldset.question").count();
  assert.equal(questions, right.length);
  for (let i = 0; i < questions; i++) {
    await page.check(`input[name=q${i}][value="${(right[i] + 1) % 3}"]`);
  }
  await page.click("#grade");
  assert.match(await page.textContent("#result"), /Not passed: 0 of 2/);
  // Retrying at once is refused; after the delay (2 s in this project) it is open again.
  await page.goto(`${BASE}/p/gated/qualification`);
  assert.match(await page.textContent("#result"), /try again in \d+ seconds/);
  await page.waitForTimeout(2200);
  await page.goto(`${BASE}/p/gated/qualification`);
  for (let i = 0; i < questions; i++) await page.check(`input[name=q${i}][value="${right[i]}"]`);
  await page.click("#grade");
  assert.match(await page.textContent("#result"), /You passed: 2 of 2/);
  await page.click("#to-project");
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/gated/task`);
  assert.equal(await page.locator("#grid .cell").count(), 15);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the requester reviews: markup shows as text, approve and reject, bulk, keyboard", async () => {
  const { context, page, problems } = await session();
  await page.goto(`${BASE}/r`);
  await page.waitForURL(`${BASE}/r/signin`);
  await page.fill("#username", "boss");
  await page.fill("#password", process.env.REQUESTER_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/r`);
  await page.click("text=Describe neurons (one per set)");
  await page.waitForURL(`${BASE}/r/p/solo`);
  assert.match(await page.textContent(".summary"), /0 of 5 approved/);
  assert.equal(await page.locator("svg.chart rect").count(), 24);
  await page.screenshot({ path: path.join(SHOTS, "dashboard.png"), fullPage: true });

  await page.goto(`${BASE}/r/p/solo/review`);
  const items = page.locator(".work .item");
  assert.equal(await items.count(), 3);
  // The worker's <script> is text on the page, never markup.
  const markup = page.locator(".work .item", { hasText: "<script>" });
  assert.equal(await markup.count(), 1);
  assert.match(await markup.locator(".text").textContent(), /^<script>alert\('x'\)<\/script> vertical stripes$/);
  assert.equal(await page.locator(".work script").count(), 0);
  await page.screenshot({ path: path.join(SHOTS, "review.png"), fullPage: true });

  // Reject the markup one (feedback required: without it the page says so).
  const rejectId = await markup.getAttribute("data-id");
  rejected.image = await page.locator(".review-set", { has: markup }).locator(".grid img").first().getAttribute("src");
  await markup.locator("button.reject").click();
  await page.waitForURL(/notice=Rejecting\+needs\+feedback/);
  const again = page.locator(`.work .item[data-id="${rejectId}"]`);
  await again.locator("input.feedback").fill("Please describe the highlighted regions only.");
  await again.locator("button.reject").click();
  await page.waitForURL(/notice=Approved\+0,\+rejected\+1/);

  // Approve one by keyboard: j to the first description, a to approve.
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("j");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("a")]);
  assert.match(await page.textContent("#notice"), /Approved 1, rejected 0/);

  // Bulk: tick what is left and approve.
  for (const box of await page.locator(".work input[type=checkbox]:not([disabled])").all()) await box.check();
  await page.click("#approve-ticked");
  await page.waitForURL(/notice=Approved\+1,/);
  assert.match(await page.textContent("#empty"), /Nothing waits/);

  // The worker table shows alice's record; a bonus and a block/unblock go through it.
  await page.goto(`${BASE}/r/p/solo/workers`);
  const alice = page.locator("tr", { hasText: "alice" });
  assert.match(await alice.textContent(), /66%/, "2 of 3 approved");
  assert.match(await alice.textContent(), /\$0\.20/);
  await alice.locator("input[name=cents]").fill("0.25");
  await alice.locator("input[name=reason]").fill("careful work");
  await alice.locator("button[value=bonus]").click();
  await page.waitForURL(/notice=Paid/);
  assert.match(await page.locator("tr", { hasText: "alice" }).textContent(), /\$0\.25/);
  await page.locator("tr", { hasText: "alice" }).locator("button[value=block]").click();
  await page.waitForURL(/notice=Blocked/);
  assert.match(await page.locator("tr", { hasText: "alice" }).textContent(), /blocked/);
  await page.locator("tr", { hasText: "alice" }).locator("button[value=unblock]").click();
  await page.waitForURL(/notice=Unblocked/);
  await page.screenshot({ path: path.join(SHOTS, "workers.png"), fullPage: true });

  // Export buttons download the work.
  await page.goto(`${BASE}/r/p/solo`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("a.button:text-is('jsonl')")]);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  const lines = Buffer.concat(chunks).toString().trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.state).sort(), ["approved", "approved", "rejected"]);
  assert.equal(lines.find((l) => l.state === "rejected").feedback, "Please describe the highlighted regions only.");

  // The qualification test can be written on the dashboard; errors name the line.
  await page.goto(`${BASE}/r/p/pool`);
  const toml = (answer) => ["pass_mark = 1", "", "[[question]]", 'project = "solo"', 'model = "alexnet/imagenet"',
    'layer = "conv1"', "unit = 0", 'choices = ["stripes", "dots"]', `answer = "${answer}"`].join("\n");
  await page.fill("#qual-source", toml("waves"));
  await page.click("text=Save the test");
  assert.match(await page.textContent("#notice"), /question 1 \(line 3\), answer: "waves" is not one of the choices/);
  await page.fill("#qual-source", toml("dots"));
  await page.click("text=Save the test");
  assert.match(await page.textContent("#notice"), /Qualification test saved: 1 question, pass mark 1/);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the worker sees why their work was rejected", async () => {
  const { context, page, problems } = await session();
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "solo");
  const rejection = page.locator(".rejections li");
  assert.equal(await rejection.count(), 1);
  assert.match(await rejection.locator(".text").textContent(), /^<script>alert\('x'\)<\/script> vertical stripes$/);
  assert.match(await rejection.locator(".feedback").textContent(), /describe the highlighted regions only/);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the rejected set is offered to another worker", async () => {
  const { context, page, problems } = await session();
  await signInWithCode(page, process.env.BOB_CODE, "solo");
  const seen = [];
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/solo/task`);
  for (;;) {
    seen.push(await describe(page, `round shapes number ${seen.length + 1}`));
    if (!page.url().endsWith("/task")) break;
  }
  assert.match(page.url(), /notice=empty/);
  assert.ok(rejected.image, "the review test ran first");
  assert.ok(seen.includes(rejected.image), `bob got the rejected set (${seen.length} sets)`);
  assert.deepEqual(problems, []);
  await context.close();
});

test("forms without the CSRF token are refused", async () => {
  const res = await fetch(`${BASE}/r/signin`, { method: "POST", redirect: "manual",
    headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "username=boss&password=x" });
  assert.equal(res.status, 403);
  const page = await fetch(`${BASE}/signin`);
  assert.match(page.headers.get("set-cookie"), /milan_csrf=[0-9a-f]{32}; HttpOnly; SameSite=Lax; Path=\/|milan_csrf=[0-9a-f]{32}.*HttpOnly/);
  assert.match(page.headers.get("content-security-policy"), /script-src 'self'.*frame-ancestors 'none'/);
});
