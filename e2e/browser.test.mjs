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

/** A fresh browser profile (own cookies), failing the test on any page error or CSP report.
 * A dialog is a failure too, unless `answer` is given: it sees each dialog's message (kept in
 * `dialogs`) and says whether to accept it. */
async function session(viewport = LAPTOP, { touch = false, answer = null } = {}) {
  const context = await browser.newContext({ viewport, hasTouch: touch, isMobile: touch });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const dialogs = [];
  page.on("dialog", (d) => {
    if (answer) {
      dialogs.push(d.message());
      return answer(d.message()) ? d.accept() : d.dismiss();
    }
    problems.push(`a dialog opened: ${d.message()}`);
    d.dismiss();
  });
  return { context, page, problems, dialogs };
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

  // Reward, time allowed and what is left are on the task page.
  assert.match(await page.textContent("#facts"), /Reward \$\d+\.\d\d per approved description · \d+ minutes? per set · \d+ more sets? for you/);

  // Click to enlarge, keyboard or buttons to move and close; a counter says where one is.
  await page.click("#grid .cell >> nth=2");
  assert.ok(await page.$eval("#lightbox", (d) => d.open));
  assert.equal(await page.textContent("#lightbox-count"), "3 of 15");
  await page.keyboard.press("ArrowRight");
  assert.equal(await page.textContent("#lightbox-count"), "4 of 15");
  await page.click("#lightbox-prev");
  assert.equal(await page.textContent("#lightbox-count"), "3 of 15");
  assert.match(await page.getAttribute("#lightbox-img", "src"), /\/images\/[0-9a-f]{64}\.png$/);
  await page.keyboard.press("Escape");
  assert.equal(await page.$eval("#lightbox", (d) => d.open), false);
  await page.screenshot({ path: path.join(SHOTS, "task-laptop.png") });

  // Outlines: drawn from each exemplar's mask on request, remembered across pages. A yellow
  // pixel lies on each outline, and nothing is drawn where the mask is empty.
  await page.check("#outline");
  await page.waitForFunction(() => [...document.querySelectorAll("#grid canvas.outline")].filter((c) => !c.hidden).length === 15);
  const drawn = await page.evaluate(() => [...document.querySelectorAll("#grid canvas.outline")].map((c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let yellow = 0, dark = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 255 && d[i] === 255 && d[i + 1] === 212) yellow++;
      else if (d[i + 3] === 255) dark++;
    }
    return { yellow, dark, w: c.width, h: c.height, all: c.width * c.height };
  }));
  for (const c of drawn) assert.ok(c.yellow > 0 && c.yellow + c.dark < c.all, `an outline, not a fill: ${JSON.stringify(c)}`);
  await page.click("#grid .cell >> nth=0");
  await page.waitForSelector("#lightbox canvas.outline:not([hidden])");
  await page.screenshot({ path: path.join(SHOTS, "task-outline-enlarged.png") });
  await page.keyboard.press("Escape");
  await page.screenshot({ path: path.join(SHOTS, "task-outline.png") });
  await page.uncheck("#outline");
  assert.equal(await page.locator("#grid canvas.outline:not([hidden])").count(), 0);

  // Controls stand out from the page (WCAG 1.4.11: 3:1 for borders and the focus ring).
  const contrast = await page.evaluate(() => {
    const rgb = (s) => s.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
    const lum = (c) => {
      const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const ratio = (a, b) => { const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
    const box = document.querySelector("#description");
    box.focus();
    const page = getComputedStyle(document.body).backgroundColor;
    const card = "rgb(255, 255, 255)";
    const st = getComputedStyle(box);
    return { border: Math.min(ratio(st.borderTopColor, page), ratio(st.borderTopColor, card)),
      focus: Math.min(ratio(getComputedStyle(box, ":focus-visible").outlineColor || st.outlineColor, page), ratio(st.outlineColor, card)) };
  });
  assert.ok(contrast.border >= 3 && contrast.focus >= 3, `contrast: ${JSON.stringify(contrast)}`);

  // Descriptions are plain text: markup and invisible or direction-changing characters are
  // refused by the live check, with the server's words.
  await page.fill("#description", "<script>alert('x')</script> vertical stripes");
  await page.waitForFunction(() => /plain text/.test(document.querySelector("#verdict").textContent));
  await page.fill("#description", "red circles\u202E segdE");
  await page.waitForFunction(() => /U\+202E/.test(document.querySelector("#verdict").textContent));
  assert.equal(await page.$eval("#description", (e) => e.validity.valid), false);

  // Three tasks; the second is the one the requester will reject.
  await describe(page, "red circles near the edges");
  await page.waitForURL(`${BASE}/p/solo/task`);
  // A submit is confirmed on the next set's page.
  assert.match(await page.textContent("#notice"), /Saved: your description was submitted/);
  assert.match(await page.textContent(".stats"), /1 done/);
  await describe(page, "vertical stripes in grey");
  await page.waitForURL(`${BASE}/p/solo/task`);
  // Submit by keyboard alone: Ctrl+Enter in the box.
  await page.fill("#description", "blue sky above buildings");
  await page.waitForFunction(() => /good/.test(document.querySelector("#verdict").textContent));
  await Promise.all([page.waitForNavigation(), page.press("#description", "Control+Enter")]);
  assert.equal((await page.textContent("#done")).trim(), "3", "three tasks done");

  // Give the fourth set back; the notice comes from the server, not the URL.
  await page.click("#return");
  await page.waitForURL(`${BASE}/p/solo`);
  assert.match(await page.textContent(".notice"), /gave the set back/);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the task page reflows on a phone without horizontal scrolling", async () => {
  const { context, page, problems } = await session(PHONE, { touch: true });
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "demo");
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/demo/task`);
  await page.waitForLoadState("networkidle");
  const m = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, w: innerWidth, h: innerHeight,
    cols: getComputedStyle(document.querySelector("#grid")).gridTemplateColumns.split(" ").length,
    bar: document.querySelector("header.bar").getBoundingClientRect().height,
    rows: (() => {
      const mids = [...document.querySelectorAll("header.bar > *")].map((e) => e.getBoundingClientRect())
        .filter((r) => r.height > 0).map((r) => (r.top + r.bottom) / 2);
      return Math.max(...mids) - Math.min(...mids) < 12 ? 1 : 2;
    })(),
    box: document.querySelector("#description").getBoundingClientRect().toJSON(),
    submit: document.querySelector("#submit").getBoundingClientRect().toJSON(),
    keys: [...document.querySelectorAll(".keys")].map((e) => getComputedStyle(e).display) }));
  assert.ok(m.sw <= m.w, `scrollWidth ${m.sw} > viewport ${m.w}`);
  assert.equal(m.cols, 3, "three columns on a phone");
  // One line of header; the text box and the button in view without scrolling; no keyboard hints.
  assert.ok(m.bar <= 56 && m.rows === 1, `header on one line: ${m.bar} px high, ${m.rows} rows`);
  assert.ok(m.box.top >= 0 && m.box.bottom <= m.h && m.submit.bottom <= m.h, `box and button in view: ${JSON.stringify(m)}`);
  assert.deepEqual([...new Set(m.keys)], ["none"], "no Ctrl+Enter or arrow-key hints on a touch screen");
  await page.screenshot({ path: path.join(SHOTS, "task-phone.png") });
  await page.screenshot({ path: path.join(SHOTS, "task-phone-full.png"), fullPage: true });
  await page.click("#return");
  assert.deepEqual(problems, []);
  await context.close();
});

/** Waits (5 s at most) for the element `id` to have focus, and fails naming what has it. */
async function hasFocus(page, id) {
  try {
    await page.waitForFunction((want) => document.activeElement && document.activeElement.id === want, id,
      { timeout: 5000 });
  } catch {
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), id);
  }
}

test("a task can be done by keyboard alone", async () => {
  const { context, page, problems } = await session();
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "demo");
  // The start button has focus on arrival (autofocus lands once the page has loaded, which a
  // loaded machine may take a moment to do); Enter starts.
  await hasFocus(page, "start");
  await Promise.all([page.waitForURL(`${BASE}/p/demo/task`), page.keyboard.press("Enter")]);
  // The text box has focus: type, then Ctrl+Enter submits.
  await hasFocus(page, "description");
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

test("an MTurk preview shows the task but cannot submit; an accepted HIT starts by a click and posts back to MTurk", async () => {
  const { context, page, problems } = await session();
  const preview = await page.goto(`${BASE}/mturk/demo?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1&turkSubmitTo=${encodeURIComponent(MTURK)}`);
  assert.match(preview.headers()["content-security-policy"], /frame-ancestors https:\/\/www\.mturk\.com https:\/\/workersandbox\.mturk\.com/);
  assert.equal(await page.locator("#grid .cell").count(), 15);
  assert.ok(await page.isDisabled("#submit"), "submit disabled in preview");
  assert.ok(await page.isDisabled("#description"), "text box disabled in preview");
  assert.match(await page.textContent("#preview-note"), /Preview/);
  // Where a worker decides to accept, the instructions are open, with an illustrated example.
  assert.ok(await page.$eval("#instructions", (d) => d.open), "instructions expanded in preview");
  assert.ok(await page.$eval(".example-set img", (i) => i.complete && i.naturalWidth > 0), "the example set is drawn");
  assert.match(await page.textContent(".example-set figcaption"), /Good: .*red circles.*Bad:/s);
  await page.screenshot({ path: path.join(SHOTS, "mturk-preview.png"), fullPage: true });
  await page.click("#submit", { force: true });
  assert.equal(page.url(), preview.url(), "a click in preview goes nowhere");
  // Nor can the server be tricked: a POST to the preview form's target stores nothing.
  const forged = await page.evaluate(async () => (await fetch("/a/none/submit", { method: "POST", redirect: "manual",
    headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "description=red+circles" })).status);
  assert.notEqual(forged, 200);

  // An accepted HIT: the page only offers a start button (a GET changes nothing); the worker
  // starts, describes, and the browser posts to MTurk's externalSubmit.
  let posted = null;
  await context.route(`${MTURK}/**`, async (route) => {
    posted = { url: route.request().url(), body: route.request().postData() };
    await route.fulfill({ status: 200, contentType: "text/html", body: "<p>MTurk got it</p>" });
  });
  await page.goto(`${BASE}/mturk/demo?assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=${encodeURIComponent(MTURK)}`);
  assert.equal(await page.locator("#description").count(), 0, "no task before the start");
  await page.screenshot({ path: path.join(SHOTS, "mturk-start.png"), fullPage: true });
  assert.ok(!(await context.cookies()).some((c) => c.name === "milan_worker"), "no session from a GET");
  await Promise.all([page.waitForNavigation(), page.click("#start")]);
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

test("a page on another site can neither start an MTurk task nor sign anyone in", async () => {
  const { context, page } = await session();
  const FOREIGN = "http://foreign.example";
  // The foreign page loads the MTurk entry as an image, links to the Prolific entry, and posts a
  // start form (with a start value it fetched from this server itself) from its own origin.
  const entry = await (await fetch(`${BASE}/mturk/demo?assignmentId=FORGED1&hitId=HF&workerId=VICTIM1&turkSubmitTo=${encodeURIComponent(MTURK)}`)).text();
  const start = entry.split('name="start" value="')[1].split('"')[0];
  const html = `<!doctype html><html><body>
    <img src="${BASE}/mturk/demo?assignmentId=IMG1&hitId=HI&workerId=VICTIM2&turkSubmitTo=${encodeURIComponent(MTURK)}">
    <form id="f" method="post" action="${BASE}/mturk/demo/start"><input name="start" value="${start}"></form>
    <a id="p" href="${BASE}/prolific/demo?PROLIFIC_PID=VICTIM3&STUDY_ID=S9&SESSION_ID=X99">study</a>
    </body></html>`;
  await context.route(`${FOREIGN}/**`, (route) => route.fulfill({ status: 200, contentType: "text/html", body: html }));
  await page.goto(`${FOREIGN}/`);
  await page.waitForLoadState("networkidle");
  const [answer] = await Promise.all([
    page.waitForNavigation(),
    page.evaluate(() => document.getElementById("f").submit()),
  ]);
  assert.equal(answer.url(), `${BASE}/mturk/demo/start`);
  assert.equal(answer.status(), 403, "a cross-site start form is refused");
  await page.goto(`${FOREIGN}/`);
  await Promise.all([page.waitForNavigation(), page.click("#p")]);
  assert.match(await page.textContent("#participant"), /VICTIM3/);
  const cookies = await context.cookies(BASE);
  assert.ok(!cookies.some((c) => c.name === "milan_worker"), "no one is signed in by a link");
  // The requester's worker table knows none of the victims.
  await page.goto(`${BASE}/r/signin`);
  await page.fill("#username", "boss");
  await page.fill("#password", process.env.REQUESTER_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/r`);
  await page.goto(`${BASE}/r/p/demo/workers`);
  const table = await page.textContent("table");
  for (const victim of ["VICTIM1", "VICTIM2", "VICTIM3"]) assert.ok(!table.includes(victim), `${victim} in ${table}`);
  await context.close();
});

test("a Prolific participant confirms, works and finishes once on the study's completion URL", async () => {
  const { context, page, problems } = await session();
  let completed = null;
  await context.route("https://app.prolific.com/**", async (route) => {
    completed = route.request().url();
    await route.fulfill({ status: 200, contentType: "text/html", body: "<p>Prolific got it</p>" });
  });
  await page.goto(`${BASE}/prolific/demo?PROLIFIC_PID=P123&STUDY_ID=S1&SESSION_ID=X9`);
  assert.match(await page.textContent("#participant"), /P123/);
  assert.ok(!(await context.cookies()).some((c) => c.name === "milan_worker"), "no session before the click");
  await page.screenshot({ path: path.join(SHOTS, "prolific-start.png"), fullPage: true });
  await Promise.all([page.waitForURL(`${BASE}/p/demo`), page.click("#start")]);
  assert.match(await page.textContent(".stats"), /prolific:p123/);
  await page.click("#start");
  await page.waitForURL(`${BASE}/p/demo/task`);
  await describe(page, "orange squares with dots");
  await page.click("#return");
  await page.waitForURL(`${BASE}/p/demo`);
  await page.click("#prolific-finish");
  await page.waitForURL(/app\.prolific\.com/);
  assert.equal(completed, "https://app.prolific.com/submissions/complete?cc=C0MPL3TE");
  // Once: the link again is refused.
  await page.goto(`${BASE}/prolific/demo?PROLIFIC_PID=P123&STUDY_ID=S1&SESSION_ID=X9`);
  await page.click("#start");
  assert.match(await page.textContent(".error"), /completed this study/);
  // Ids that are not Prolific's are refused.
  const bad = await page.goto(`${BASE}/prolific/demo?PROLIFIC_PID=%3Cx%3E&STUDY_ID=S1&SESSION_ID=X9`);
  assert.equal(bad.status(), 400);
  assert.deepEqual(problems.filter((p) => !/status of 409/.test(p)), []);
  await context.close();
});

test("a worker fails the qualification test, waits, then passes and can work", async () => {
  const { context, page, problems } = await session();
  await signInWithCode(page, process.env.QUINN_CODE, "gated");
  // Accept is refused until the test is passed.
  await page.click("#take-test");
  await page.waitForURL(`${BASE}/p/gated/qualification`);
  // The choices carry opaque values: answers are picked by their text.
  const right = process.env.QUAL_ANSWERS.split("|");
  const questions = await page.locator("fieldset.question").count();
  assert.equal(questions, right.length);
  const pick = (i, text) => page.locator("fieldset.question").nth(i).locator("label.choice", { hasText: text }).locator("input");
  for (let i = 0; i < questions; i++) {
    const wrong = page.locator("fieldset.question").nth(i).locator("label.choice").filter({ hasNotText: right[i] }).first();
    await wrong.locator("input").check();
  }
  await page.click("#grade");
  assert.match(await page.textContent("#result"), /Not passed: 0 of 2/);
  // Retrying at once is refused; after the delay (2 s in this project) it is open again.
  await page.goto(`${BASE}/p/gated/qualification`);
  assert.match(await page.textContent("#result"), /try again in \d+ s\b/);
  await page.waitForTimeout(2200);
  await page.goto(`${BASE}/p/gated/qualification`);
  for (let i = 0; i < questions; i++) await pick(i, right[i]).check();
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
  // The worker table asks before money moves or a worker is blocked; the first bonus question is
  // answered "no" (nothing may be paid), every later one "yes".
  let refuse = 1;
  const { context, page, problems, dialogs } = await session(LAPTOP, { answer: () => refuse-- <= 0 });
  await page.goto(`${BASE}/r`);
  await page.waitForURL(`${BASE}/r/signin`);
  await page.fill("#username", "boss");
  await page.fill("#password", process.env.REQUESTER_PASSWORD);
  await page.click("button[type=submit]");
  await page.waitForURL(`${BASE}/r`);
  await page.click("text=Describe neurons (one per set)");
  await page.waitForURL(`${BASE}/r/p/solo`);
  assert.match(await page.textContent(".summary"), /0 of 5 approved/);
  assert.match(await page.textContent(".summary"), /3 awaiting your review/);
  assert.equal(await page.locator("svg.chart rect").count(), 24);
  assert.equal(await page.locator("svg.chart text.tick.x").count(), 5, "time along the bottom");
  assert.ok(await page.locator("svg.chart text.tick.y").count() >= 2, "counts up the side");
  await page.screenshot({ path: path.join(SHOTS, "dashboard.png"), fullPage: true });

  await page.goto(`${BASE}/r/p/solo/review`);
  const items = page.locator(".work .item");
  assert.equal(await items.count(), 3);
  // The trainer's description with a <script> in it is text on the page, never markup.
  const model = page.locator(".model-description", { hasText: "<script>" }).first();
  assert.match(await model.textContent(), /<script>alert\('m'\)<\/script> stripes/);
  assert.equal(await page.locator(".review-set script").count(), 0);
  await page.screenshot({ path: path.join(SHOTS, "review.png"), fullPage: true });

  // Reject the stripes one (feedback required: without it the page says so).
  const markup = page.locator(".work .item", { hasText: "vertical stripes in grey" });
  assert.equal(await markup.count(), 1);
  const rejectId = await markup.getAttribute("data-id");
  rejected.image = await page.locator(".review-set", { has: markup }).locator(".grid img").first().getAttribute("src");
  await Promise.all([page.waitForNavigation(), markup.locator("button.reject").click()]);
  assert.match(await page.textContent("#notice"), /Rejecting needs feedback/);
  const again = page.locator(`.work .item[data-id="${rejectId}"]`);
  await again.locator("input.feedback").fill("Please describe the highlighted regions only.");
  await Promise.all([page.waitForNavigation(), again.locator("button.reject").click()]);
  assert.match(await page.textContent("#notice"), /Approved 0, rejected 1/);

  // Approve one by keyboard: j to the first description, a to approve.
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("j");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("a")]);
  assert.match(await page.textContent("#notice"), /Approved 1, rejected 0/);

  // Bulk: tick what is left and approve.
  for (const box of await page.locator(".work input[type=checkbox]:not([disabled])").all()) await box.check();
  await Promise.all([page.waitForNavigation(), page.click("#approve-ticked")]);
  assert.match(await page.textContent("#notice"), /Approved 1,/);
  assert.match(await page.textContent("#empty"), /Nothing waits/);

  // The worker table shows alice's record; a bonus and a block/unblock go through it.
  await page.goto(`${BASE}/r/p/solo/workers`);
  const alice = page.locator("tr", { hasText: "alice" });
  assert.match(await alice.textContent(), /66%/, "2 of 3 approved");
  assert.match(await alice.textContent(), /\$0\.20/);
  await alice.locator("input[name=cents]").fill("0.25");
  await alice.locator("input[name=reason]").fill("careful work");
  // Answered "no": the page stays, nothing is paid.
  await alice.locator("button[value=bonus]").click();
  assert.match(dialogs[0], /Pay a bonus of \$0\.25 to alice for "careful work"\?/);
  assert.match(await alice.textContent(), /\$0\.00/, "no bonus yet");
  await Promise.all([page.waitForNavigation(), alice.locator("button[value=bonus]").click()]);
  assert.match(await page.textContent("#notice"), /Paid \$0\.25 bonus to alice/);
  assert.match(await page.locator("tr", { hasText: "alice" }).textContent(), /\$0\.25/);
  // The same form sent twice (a double click, a retried request) pays once.
  await page.locator("tr", { hasText: "alice" }).locator("input[name=cents]").fill("0.10");
  await page.locator("tr", { hasText: "alice" }).locator("input[name=reason]").fill("twice?");
  const twice = await page.evaluate(async () => {
    const row = [...document.querySelectorAll("tr")].find((r) => r.textContent.includes("alice"));
    const form = row.querySelector("form");
    const body = new URLSearchParams(new FormData(form));
    body.set("action", "bonus");
    // form.action would be the buttons named "action": read the attribute.
    const send = () => fetch(form.getAttribute("action"), { method: "POST", body, redirect: "manual" }).then((r) => r.status);
    return Promise.all([send(), send()]);
  });
  assert.deepEqual(twice, [0, 0], "both answered with a redirect (opaque to fetch)");
  await page.goto(`${BASE}/r/p/solo/workers`);
  assert.match(await page.locator("tr", { hasText: "alice" }).textContent(), /\$0\.35/, "25 + 10 cents, not 25 + 20");
  await Promise.all([page.waitForNavigation(), page.locator("tr", { hasText: "alice" }).locator("button[value=block]").click()]);
  assert.match(await page.textContent("#notice"), /Blocked alice/);
  assert.match(await page.locator("tr", { hasText: "alice" }).textContent(), /blocked/);
  await Promise.all([page.waitForNavigation(), page.locator("tr", { hasText: "alice" }).locator("button[value=unblock]").click()]);
  assert.match(await page.textContent("#notice"), /Unblocked alice/);
  assert.ok(dialogs.some((d) => /Block alice\?/.test(d)), "blocking asked first");
  // The table fits a laptop screen: no button wraps onto a second line.
  const wraps = await page.evaluate(() => [...document.querySelectorAll("form.actions .buttons")].map((b) => b.getBoundingClientRect().height));
  for (const h of wraps) assert.ok(h < 50, `action buttons ${h} px high`);
  // Filters: a search that matches nobody says so.
  await page.fill("#worker-search", "nobody-like-this");
  await Promise.all([page.waitForNavigation(), page.click("#worker-filters button")]);
  assert.match(await page.textContent("table.workers"), /No worker matches these filters/);
  await page.goto(`${BASE}/r/p/solo/workers`);
  await page.screenshot({ path: path.join(SHOTS, "workers.png"), fullPage: true });

  // The set browser: a model's sets, then one set's assignments and history.
  await page.goto(`${BASE}/r/p/solo/sets?model=alexnet%2Fimagenet`);
  assert.ok(await page.locator("#set-list tbody tr").count() > 1, "one row per set");
  await Promise.all([page.waitForNavigation(), page.locator("#set-list a").first().click()]);
  assert.match(await page.textContent("#set-title"), /alexnet\/imagenet \/ \S+ \/ unit \d+/);
  assert.ok(await page.locator("#set-history li").count() >= 1);
  await page.screenshot({ path: path.join(SHOTS, "set-history.png"), fullPage: true });

  // Export buttons download the work.
  await page.goto(`${BASE}/r/p/solo`);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("a.button:text-is('JSON lines')")]);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  const lines = Buffer.concat(chunks).toString().trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.state).sort(), ["approved", "approved", "rejected"]);
  assert.equal(lines.find((l) => l.state === "rejected").feedback, "Please describe the highlighted regions only.");
  // MILANNOTATIONS of the described units: a gzip'd tar, named after the project.
  const [tarball] = await Promise.all([page.waitForEvent("download"), page.click("a.button:text-is('MILANNOTATIONS')")]);
  assert.equal(tarball.suggestedFilename(), "solo.tar.gz");
  const gz = [];
  for await (const c of await tarball.createReadStream()) gz.push(c);
  const bytes = Buffer.concat(gz);
  assert.deepEqual([bytes[0], bytes[1]], [0x1f, 0x8b], "gzip magic");

  // The qualification test: a form (errors beside what was typed), and the TOML to copy in or out.
  await page.goto(`${BASE}/r/p/pool`);
  await Promise.all([page.waitForNavigation(), page.click("#edit-qualification")]);
  assert.equal(page.url(), `${BASE}/r/p/pool/qualification`);
  await page.fill("#pass-mark", "1");
  await page.fill("#q0-project", "solo");
  await page.fill("#q0-model", "alexnet/imagenet");
  await page.fill("#q0-layer", "conv1");
  await page.fill("#q0-unit", "0");
  await page.fill("#q0-choices", "stripes\ndots");
  await page.fill("#q0-answer", "waves");
  await Promise.all([page.waitForNavigation(), page.click("#save-form")]);
  assert.match(await page.textContent("#form-error"), /question 1, answer: "waves" is not one of the choices/);
  assert.equal(await page.inputValue("#q0-answer"), "waves", "what was typed comes back");
  const errorBox = await page.locator("#form-error").boundingBox();
  const formBox = await page.locator("#qual-form").boundingBox();
  assert.ok(errorBox.y - formBox.y < 60, "the error is at the form, not the top of a long page");
  await page.screenshot({ path: path.join(SHOTS, "qualification-error.png"), fullPage: true });
  await page.fill("#q0-answer", "dots");
  await Promise.all([page.waitForNavigation(), page.click("#save-form")]);
  assert.match(await page.textContent("#notice"), /Qualification test saved: 1 question, pass mark 1/);
  assert.match(await page.inputValue("#qual-source"), /answer = "dots"/, "the TOML to copy out");
  const toml = (answer) => ["pass_mark = 1", "", "[[question]]", 'project = "solo"', 'model = "alexnet/imagenet"',
    'layer = "conv1"', "unit = 0", 'choices = ["stripes", "dots"]', `answer = "${answer}"`].join("\n");
  await page.fill("#qual-source", toml("waves"));
  await Promise.all([page.waitForNavigation(), page.click("#save-toml")]);
  assert.match(await page.textContent("#toml-error"), /question 1 \(line 3\), answer: "waves" is not one of the choices/);
  assert.match(await page.inputValue("#qual-source"), /answer = "waves"/, "the TOML comes back as sent");
  await page.fill("#qual-source", toml("stripes"));
  await Promise.all([page.waitForNavigation(), page.click("#save-toml")]);
  assert.match(await page.textContent("#notice"), /Qualification test saved: 1 question, pass mark 1/);
  await page.screenshot({ path: path.join(SHOTS, "qualification.png"), fullPage: true });

  // Signing out ends the session on the server: the old cookie, put back, no longer works.
  const old = (await context.cookies()).find((c) => c.name === "milan_requester");
  await page.goto(`${BASE}/r`);
  await Promise.all([page.waitForNavigation(), page.click("nav form button")]);
  await page.waitForURL(`${BASE}/r/signin`);
  await context.addCookies([old]);
  await page.goto(`${BASE}/r/p/solo`);
  assert.equal(page.url(), `${BASE}/r/signin`, "the copied cookie is dead");
  assert.deepEqual(problems, []);
  await context.close();
});

test("the project's catalog is the requester's, live, and works under the server's policy", async () => {
  const stranger = await session();
  await stranger.page.goto(`${BASE}/catalog/solo/index.html`);
  assert.equal(stranger.page.url(), `${BASE}/r/signin`, "a stranger is sent to sign in");
  await stranger.context.close();

  const { context, page, problems } = await session();
  await page.goto(`${BASE}/r/signin`);
  await page.fill("#username", "boss");
  await page.fill("#password", process.env.REQUESTER_PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  await page.goto(`${BASE}/r/p/solo`);
  await Promise.all([page.waitForNavigation(), page.click("#catalog-link")]);
  assert.equal(page.url(), `${BASE}/catalog/solo/index.html`);
  assert.equal(await page.locator("figure.chart svg").count(), 1);
  await page.goto(`${BASE}/catalog/solo/search.html?q=circles`);
  await page.waitForFunction(() => /units? \(/.test(document.querySelector("#status").textContent));
  const card = page.locator("#results .card", { hasText: "red circles near the edges" });
  assert.equal(await card.count(), 1, "the approved description is found");
  await Promise.all([page.waitForNavigation(), card.locator("a.unit-link").click()]);
  assert.equal(await page.locator(".exemplars img").count(), 15);
  await page.waitForFunction(() => Array.from(document.querySelectorAll(".exemplars img")).every((i) => i.complete && i.naturalWidth > 0));
  assert.match(await page.textContent("table.descriptions"), /crowd\s*red circles near the edges/);
  await page.goto(`${BASE}/catalog/solo/search.html?q=vertical+stripes+grey`);
  await page.waitForFunction(() => /units? \(/.test(document.querySelector("#status").textContent));
  assert.match(await page.textContent("#status"), /^0 units/, "rejected work is not in the catalog");
  await page.goto(`${BASE}/catalog/solo/search.html?q=circles`);
  await page.waitForFunction(() => /units? \(/.test(document.querySelector("#status").textContent));
  await page.screenshot({ path: path.join(SHOTS, "catalog-live.png") });
  assert.deepEqual(problems, [], "no script error and no policy violation");
  await context.close();
});

test("the worker sees why their work was rejected", async () => {
  const { context, page, problems } = await session();
  await signInWithPassword(page, "alice", process.env.WORKER_PASSWORD, "solo");
  const rejection = page.locator(".rejections li");
  assert.equal(await rejection.count(), 1);
  assert.match(await rejection.locator(".text").textContent(), /^vertical stripes in grey$/);
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
  assert.equal(page.url(), `${BASE}/p/solo`);
  assert.match(await page.textContent(".notice"), /Nothing else is left/);
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

test("a mistyped address or a reloaded submit shows a page, not JSON", async () => {
  const { context, page, problems } = await session();
  const resp = await page.goto(`${BASE}/p/solo/no-such-page`);
  assert.equal(resp.status(), 404);
  assert.match(await page.textContent("h1"), /Not Found/);
  assert.ok(await page.locator("a[href='/']").count() >= 1, "a way back");
  await page.screenshot({ path: path.join(SHOTS, "not-found.png") });
  // The address a refused submit leaves in the bar, opened again: back to the tasks.
  await page.goto(`${BASE}/a/00000000-0000-0000-0000-000000000000/submit`);
  assert.match(page.url(), /\/signin/);
  // The tab has an icon.
  const icon = await page.request.get(`${BASE}/favicon.ico`);
  assert.equal(icon.status(), 200);
  assert.deepEqual(problems.filter((p) => !/404/.test(p)), []);
  await context.close();
});
