// The Neuron Catalog's speed in Chromium, from disk: page loads (home, the first and last page of
// the largest layer, a unit page) and searches, each beside a blank page's load in the same
// browser as the baseline. Run by scripts/bench-catalog; prints a Markdown table.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const SITE = process.argv[2];
const REPEATS = 5;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
const page = await (await browser.newContext({ viewport: { width: 1366, height: 768 } })).newPage();
const url = (rel) => {
  const [file, query] = rel.split("?");
  return pathToFileURL(path.join(SITE, file)).href + (query ? "?" + query : "");
};

/** Milliseconds from navigation start to the load event (images in view included), median of REPEATS. */
async function load(href) {
  const times = [];
  for (let i = 0; i < REPEATS; i++) {
    await page.goto("about:blank");
    await page.goto(href, { waitUntil: "load" });
    times.push(await page.evaluate(() => {
      const n = performance.getEntriesByType("navigation")[0];
      return n.loadEventEnd - n.startTime;
    }));
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], max: times[times.length - 1] };
}

const blankFile = path.join(SITE, "..", "blank.html");
await import("node:fs").then((fs) => fs.writeFileSync(blankFile, "<!doctype html><title>blank</title>"));
const rows = [];
const blank = await load(pathToFileURL(blankFile).href);
rows.push(["blank page (baseline)", blank]);
rows.push(["home page", await load(url("index.html"))]);

// The largest layer: from the index.
await page.goto(url("search.html"));
await page.waitForSelector("#search[data-ready=true]");
const big = await page.evaluate(() => {
  const C = window.MILAN_CATALOG;
  const counts = new Map();
  for (const u of C.units) counts.set(u[0] + "/" + u[1], (counts.get(u[0] + "/" + u[1]) || 0) + 1);
  const [key, n] = [...counts].sort((a, b) => b[1] - a[1])[0];
  const [m, l] = key.split("/").map(Number);
  const last = C.units.filter((u) => u[0] === m && u[1] === l).pop();
  return { dir: C.models[m].slug + "/" + C.models[m].layers[l].slug, units: n, pages: Math.ceil(n / 100), lastUnit: last[2],
    texts: C.texts.length, unitsAll: C.units.length };
});
rows.push([`layer page 1 of ${big.pages} (${big.units}-unit layer)`, await load(url(`${big.dir}/index.html`))]);
rows.push([`layer page ${big.pages} of ${big.pages}`, await load(url(`${big.dir}/page-${big.pages}.html`))]);
rows.push(["unit page", await load(url(`${big.dir}/${big.lastUnit}.html`))]);
rows.push(["search page (index read and built)", await load(url("search.html"))]);

// Searches: the time the page itself reports (query parsed, matched, ranked; first 60 drawn).
const searches = [];
for (const q of ["red", "stripes", "shapes", "\"star shapes\"", "blue squares", "dog", "zzz"]) {
  const times = [];
  let found = "";
  for (let i = 0; i < REPEATS; i++) {
    await page.goto(url("search.html?q=" + encodeURIComponent(q)));
    await page.waitForFunction(() => document.querySelector("#status").dataset.ms !== undefined);
    times.push(Number(await page.evaluate(() => document.querySelector("#status").dataset.ms)));
    found = await page.textContent("#status");
  }
  times.sort((a, b) => a - b);
  searches.push([q, { median: times[Math.floor(times.length / 2)], max: times[times.length - 1] }, found.split(" in ")[0]]);
}
await browser.close();

console.log(`Site: ${big.unitsAll} units, ${big.texts} descriptions. Chromium ${REPEATS} loads each, from disk.\n`);
console.log("| page | load, median (ms) | max (ms) | median / blank page |");
console.log("|---|---:|---:|---:|");
for (const [name, t] of rows) console.log(`| ${name} | ${t.median.toFixed(0)} | ${t.max.toFixed(0)} | ${(t.median / blank.median).toFixed(1)}x |`);
console.log("\n| search | answer, median (ms) | max (ms) | found |");
console.log("|---|---:|---:|---|");
for (const [q, t, found] of searches) console.log(`| \`${q}\` | ${t.median.toFixed(1)} | ${t.max.toFixed(1)} | ${found} |`);
