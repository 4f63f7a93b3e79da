// The Neuron Catalog in headless Chromium (Debian's), opened from file:// as a user opens a
// built site. Started by trainer/tests/it/catalog.rs, which builds the site, computes what the
// search must find, and passes both in the environment.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const SITE = process.env.SITE;
const SHOTS = process.env.SCREENSHOT_DIR;
const EXPECT = JSON.parse(fs.readFileSync(process.env.EXPECT, "utf8"));
const LAPTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };
const url = (rel) => {
  const [file, query] = rel.split("?");
  return pathToFileURL(path.join(SITE, file)).href + (query ? "?" + query : "");
};

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});
after(async () => browser && (await browser.close()));

/** A page that fails the test on any script error, dialog or request leaving file://. */
async function open(rel, viewport = LAPTOP) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console: ${m.text()}`));
  page.on("dialog", (d) => { problems.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  page.on("request", (r) => { if (!r.url().startsWith("file://")) problems.push(`external request: ${r.url()}`); });
  await page.goto(url(rel));
  return { page, problems, close: () => context.close() };
}

async function search(page, q) {
  await page.fill("#q", q);
  await page.press("#q", "Enter");
  await page.waitForFunction(() => /units? \(/.test(document.querySelector("#status").textContent));
  return page.locator("#results > li").count();
}

test("the page's words are the index's words", async () => {
  const { page, problems, close } = await open("search.html");
  await page.waitForSelector("#search[data-ready=true]");
  for (const w of EXPECT.words) {
    const tokens = await page.evaluate((t) => window.MILAN_WORDS.tokens(t), w.text);
    assert.deepEqual(tokens, w.tokens, `tokens of ${w.text}`);
    const singulars = await page.evaluate((ts) => ts.map(window.MILAN_WORDS.singular), w.tokens);
    assert.deepEqual(singulars, w.singulars, `singulars of ${w.text}`);
  }
  assert.deepEqual(problems, []);
  await close();
});

test("the home page lists models and layers with a chart, and leads to a layer", async () => {
  const { page, problems, close } = await open("index.html");
  assert.equal(await page.locator("section.model").count(), 2);
  assert.equal(await page.locator("figure.chart svg").count(), 2);
  await page.screenshot({ path: path.join(SHOTS, "home.png"), fullPage: true });
  // Keyboard: Tab from the top reaches the first layer link; Enter follows it.
  await page.keyboard.press("Tab"); // skip link
  let reached = false;
  for (let i = 0; i < 12 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement.matches("section.model tbody a"));
  }
  assert.ok(reached, "a layer link is reachable by Tab");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.match(page.url(), /\/index\.html$/);
  assert.ok((await page.locator(".grid .card").count()) > 0);
  assert.deepEqual(problems, []);
  await close();
});

test("a paged layer: 100 units a page, arrow keys turn pages, images load", async () => {
  const { page, problems, close } = await open("alexnet-imagenet/conv2/index.html");
  assert.equal(await page.locator(".grid .card").count(), 100);
  await page.waitForFunction(() => Array.from(document.images).slice(0, 8).every((i) => i.complete && i.naturalWidth > 0));
  for (const alt of await page.locator(".grid img").evaluateAll((imgs) => imgs.map((i) => i.alt))) assert.ok(alt.length > 10);
  await page.screenshot({ path: path.join(SHOTS, "layer.png") });
  await Promise.all([page.waitForNavigation(), page.keyboard.press("ArrowRight")]);
  assert.match(page.url(), /page-2\.html$/);
  assert.ok((await page.locator(".grid .card").count()) > 0);
  assert.deepEqual(problems, []);
  await close();
});

test("a unit page: 15 exemplars, descriptions by source, crowd text as text, neighbours", async () => {
  const { page, problems, close } = await open("alexnet-imagenet/conv1/3.html");
  const tiles = page.locator(".exemplars img");
  assert.equal(await tiles.count(), 15);
  await page.waitForFunction(() => Array.from(document.querySelectorAll(".exemplars img")).every((i) => i.complete && i.naturalWidth > 0));
  // Each tile shows a different part of the sheet: their boxes differ.
  const lefts = await tiles.evaluateAll((imgs) => imgs.map((i) => i.getBoundingClientRect().left - i.parentElement.getBoundingClientRect().left));
  assert.equal(new Set(lefts.map((x) => Math.round(x))).size, 5, "five columns of the sheet");
  const rows = await page.locator("table.descriptions tbody tr").allTextContents();
  assert.equal(rows.length, 4);
  assert.equal(rows.filter((r) => r.startsWith("human")).length, 3);
  const hostile = rows.find((r) => r.startsWith("MILAN base"));
  assert.equal(hostile, "MILAN base" + EXPECT.hostile, "the hostile text is shown as text");
  assert.match(await page.textContent(".agreement"), /Agreement among the 3 human descriptions/);
  await page.screenshot({ path: path.join(SHOTS, "unit.png"), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.keyboard.press("ArrowRight")]);
  assert.match(page.url(), /conv1\/4\.html$/);
  await Promise.all([page.waitForNavigation(), page.keyboard.press("ArrowLeft")]);
  assert.match(page.url(), /conv1\/3\.html$/);
  await Promise.all([page.waitForNavigation(), page.click("#up")]);
  assert.match(page.url(), /conv1\/index\.html#u3$/);
  assert.deepEqual(problems, []);
  await close();
});

test("search: words and plurals, phrases, filters, a click to the unit", async () => {
  const { page, problems, close } = await open("search.html");
  await page.waitForSelector("#search[data-ready=true]");
  const all = Object.values(EXPECT.star).reduce((a, b) => a + b, 0);
  assert.ok(all > 0);
  assert.equal(await search(page, "star"), Math.min(all, 60));
  assert.match(await page.textContent("#status"), new RegExp(`^${all} units? `));
  assert.match(await page.textContent("#status"), new RegExp(`^${all} `), "plural folded: stars found by star");
  await search(page, "stars");
  assert.match(await page.textContent("#status"), new RegExp(`^${all} `), "and star by stars");
  // Matches are marked in the results.
  assert.ok((await page.locator("#results mark").count()) > 0);
  // Filter by model: only that model's units.
  const [model, count] = Object.entries(EXPECT.star)[0];
  const option = await page.locator("#model option", { hasText: model }).getAttribute("value");
  await page.selectOption("#model", option);
  await page.waitForFunction((n) => document.querySelector("#status").textContent.startsWith(n + " "), count);
  const names = await page.locator("#results .unit-no").allTextContents();
  assert.ok(names.every((n) => n.startsWith(model + " ")), names.join("; "));
  // Layer and source filters narrow further.
  await page.selectOption("#layer", { label: "conv2" });
  await page.selectOption("#source", { label: "MILAN base" });
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("20 "));
  // A phrase must appear in order.
  await page.selectOption("#source", "");
  await search(page, "\"shapes star\"");
  assert.match(await page.textContent("#status"), /^0 units/);
  await search(page, "\"star shapes\"");
  assert.doesNotMatch(await page.textContent("#status"), /^0 units/);
  await page.screenshot({ path: path.join(SHOTS, "search.png") });
  // The URL keeps the query; one click (or Tab and Enter) from a result to its unit.
  assert.match(page.url(), /q=%22star\+shapes%22/);
  await page.focus("#q");
  let onResult = false;
  for (let i = 0; i < 10 && !onResult; i++) {
    await page.keyboard.press("Tab");
    onResult = await page.evaluate(() => document.activeElement.matches("#results a.unit-link"));
  }
  assert.ok(onResult, "a result is reachable by Tab");
  const href = await page.evaluate(() => document.activeElement.getAttribute("href"));
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.ok(page.url().endsWith(href), `${page.url()} is ${href}`);
  assert.equal(await page.locator(".exemplars img").count(), 15);
  assert.deepEqual(problems, []);
  await close();
});

test("on a phone: no sideways scrolling, readable unit page", async () => {
  for (const rel of ["index.html", "alexnet-imagenet/conv2/index.html", "alexnet-imagenet/conv1/3.html", "search.html?q=star"]) {
    const { page, problems, close } = await open(rel, PHONE);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= PHONE.width + 1, `${rel} is ${wide} px wide on a ${PHONE.width} px phone`);
    if (rel.endsWith("3.html")) await page.screenshot({ path: path.join(SHOTS, "unit-phone.png"), fullPage: true });
    assert.deepEqual(problems, []);
    await close();
  }
});
