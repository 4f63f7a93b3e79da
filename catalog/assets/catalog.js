// The Neuron Catalog's one script: keyboard shortcuts on every page, and the search on the search
// page. No external requests; results are built with DOM text nodes only (descriptions are crowd
// text and never reach innerHTML).
"use strict";

(function () {
  // ------------------------------------------------------------------ keyboard
  function typing(el) {
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA" || el.isContentEditable);
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || typing(document.activeElement)) return;
    if (e.key === "/") {
      const q = document.getElementById("q");
      if (q) q.focus();
      else location.href = document.querySelector("header.top a[accesskey=s]").href;
      e.preventDefault();
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      const link = document.querySelector(e.key === "ArrowLeft" ? "a[rel=prev]" : "a[rel=next]");
      if (link) {
        e.preventDefault();
        location.href = link.href;
      }
    }
  });

  const C = window.MILAN_CATALOG;
  if (!C) return;

  // ------------------------------------------------------------------ words, as Rust makes them
  // milan_shared::tokenize::tokenize: runs of letters and digits (an apostrophe between letters
  // and a point between digits stay inside), lowercased; the index keeps the runs with a letter
  // or digit. Returns [word, start, end] with offsets into `text` (for highlighting).
  const ALNUM = /[\p{Alphabetic}\p{N}]/u;
  const ALPHA = /\p{Alphabetic}/u;
  const DIGIT = /[0-9]/;
  function tokens(text) {
    const chars = Array.from(text);
    const out = [];
    let word = "", start = 0, offset = 0;
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i], prev = chars[i - 1], next = chars[i + 1];
      let joins = false;
      if (ALNUM.test(c)) joins = true;
      else if (c === "'" || c === "\u2019") joins = !!prev && ALPHA.test(prev) && !!next && ALPHA.test(next);
      else if (c === ".") joins = !!prev && DIGIT.test(prev) && !!next && DIGIT.test(next);
      if (joins) {
        if (word === "") start = offset;
        word += (c === "\u2019" ? "'" : c).toLowerCase();
      } else if (word !== "") {
        out.push([word, start, offset]);
        word = "";
      }
      offset += c.length;
    }
    if (word !== "") out.push([word, start, offset]);
    return out.filter((t) => ALNUM.test(t[0]));
  }
  // milan_shared::lexicon::singular (lengths in UTF-8 bytes, as Rust's str::len).
  const bytes = (w) => new TextEncoder().encode(w).length;
  function singular(w) {
    if (bytes(w) > 4 && w.endsWith("ies")) return w.slice(0, -3) + "y";
    if (bytes(w) > 3 && w.endsWith("es")) {
      const stem = w.slice(0, -2);
      if (stem.endsWith("x") || stem.endsWith("ch") || stem.endsWith("sh") || stem.endsWith("s")) return stem;
    }
    if (bytes(w) > 2 && !w.endsWith("ss") && w.endsWith("s")) return w.slice(0, -1);
    return null;
  }
  // A word's keys: itself and its singular. Two words match when their keys meet.
  const keysOf = (w) => { const s = singular(w); return s === null ? [w] : [w, s]; };
  window.MILAN_WORDS = { tokens: (t) => tokens(t).map((x) => x[0]), singular: singular };

  // ------------------------------------------------------------------ the index, built at load
  const started = performance.now();
  const wordKeys = C.words.map((w) => (w[1] === null ? [w[0]] : [w[0], w[1]]));
  const postings = new Map(); // key -> text ids, ascending, each once
  const lengths = new Float64Array(C.texts.length);
  let totalLength = 0;
  C.texts.forEach(function (t, id) {
    lengths[id] = t[3].length;
    totalLength += t[3].length;
    for (const w of t[3]) {
      for (const k of wordKeys[w]) {
        let list = postings.get(k);
        if (!list) postings.set(k, (list = []));
        if (list[list.length - 1] !== id) list.push(id);
      }
    }
  });
  const meanLength = C.texts.length ? totalLength / C.texts.length : 1;
  const loadMs = performance.now() - started;

  // ------------------------------------------------------------------ a query
  // Words anywhere, "phrases" in order; every word and phrase must be in a description.
  function parse(q) {
    const words = [], phrases = [];
    const re = /"([^"]*)"?|([^\s"]+)/g;
    let m;
    while ((m = re.exec(q)) !== null) {
      const ws = tokens(m[1] !== undefined ? m[1] : m[2]).map((t) => t[0]);
      if (ws.length === 0) continue;
      if (m[1] !== undefined && ws.length > 1) phrases.push(ws);
      for (const w of ws) if (!words.includes(w)) words.push(w);
    }
    return { words: words, phrases: phrases };
  }
  function textsWith(word) {
    const lists = keysOf(word).map((k) => postings.get(k) || []);
    if (lists.length === 1) return lists[0];
    return Array.from(new Set(lists[0].concat(lists[1]))).sort((a, b) => a - b);
  }
  const meetKeys = (ka, kb) => ka.some((k) => kb.includes(k));
  const meet = (a, b) => meetKeys(keysOf(a), keysOf(b));
  function hasPhrase(id, phraseKeys) {
    const ws = C.texts[id][3];
    for (let i = 0; i + phraseKeys.length <= ws.length; i++) {
      let all = true;
      for (let j = 0; j < phraseKeys.length && all; j++) all = meetKeys(phraseKeys[j], wordKeys[ws[i + j]]);
      if (all) return true;
    }
    return false;
  }
  // BM25 (k1 1.2, b 0.75) of a description for the query's words (`[word keys, idf]`).
  function score(id, terms) {
    let s = 0;
    const ws = C.texts[id][3];
    for (const [keys, idf] of terms) {
      let tf = 0;
      for (const x of ws) if (meetKeys(keys, wordKeys[x])) tf++;
      s += idf * (tf * 2.2) / (tf + 1.2 * (0.25 + 0.75 * lengths[id] / meanLength));
    }
    return s;
  }

  /** Units matching the query and filters, best first: [{unit, texts: [ids], score}]. */
  function search(q, model, layer, source) {
    const { words, phrases } = parse(q);
    const keep = function (id) {
      const t = C.texts[id], u = C.units[t[0]];
      return (model === null || u[0] === model) && (layer === null || u[1] === layer) && (source === null || t[1] === source);
    };
    let ids;
    const terms = [];
    if (words.length === 0) {
      ids = [];
      for (let id = 0; id < C.texts.length; id++) if (keep(id)) ids.push(id);
    } else {
      const lists = words.map(textsWith);
      words.forEach((w, i) => terms.push([keysOf(w), Math.log(1 + (C.texts.length - lists[i].length + 0.5) / (lists[i].length + 0.5))]));
      const phraseKeys = phrases.map((p) => p.map(keysOf));
      lists.sort((a, b) => a.length - b.length);
      let found = lists[0];
      for (let i = 1; i < lists.length && found.length; i++) {
        const other = new Set(lists[i]);
        found = found.filter((id) => other.has(id));
      }
      ids = found.filter((id) => keep(id) && phraseKeys.every((p) => hasPhrase(id, p)));
    }
    const byUnit = new Map();
    for (const id of ids) {
      const u = C.texts[id][0];
      let r = byUnit.get(u);
      if (!r) byUnit.set(u, (r = { unit: u, texts: [], score: 0 }));
      r.texts.push(id);
      r.score += terms.length ? score(id, terms) : 0;
    }
    // A unit whose several descriptions agree on the words ranks above one that says it once.
    return Array.from(byUnit.values()).sort((a, b) => b.score - a.score || a.unit - b.unit);
  }
  window.MILAN_SEARCH = search;

  // ------------------------------------------------------------------ the page
  const form = document.getElementById("search");
  if (!form) return;
  const qInput = document.getElementById("q");
  const modelSel = document.getElementById("model");
  const layerSel = document.getElementById("layer");
  const sourceSel = document.getElementById("source");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const more = document.getElementById("more");
  const PAGE = 60;
  let found = [], shown = 0, query = { words: [] };

  function fillLayers(selected) {
    while (layerSel.options.length > 1) layerSel.remove(1);
    const m = modelSel.value === "" ? null : Number(modelSel.value);
    if (m === null || !C.models[m]) return;
    C.models[m].layers.forEach(function (l, i) {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = l.name;
      layerSel.appendChild(o);
    });
    if (selected !== null && selected !== undefined) layerSel.value = selected;
  }
  const number = (v) => (v === "" || v === null ? null : Number(v));

  function highlighted(text) {
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const [w, start, end] of tokens(text)) {
      if (!query.words.some((q) => meet(q, w))) continue;
      frag.appendChild(document.createTextNode(text.slice(at, start)));
      const mark = document.createElement("mark");
      mark.textContent = text.slice(start, end);
      frag.appendChild(mark);
      at = end;
    }
    frag.appendChild(document.createTextNode(text.slice(at)));
    return frag;
  }
  function badge(source) {
    const s = document.createElement("span");
    s.className = "src s" + (source % 7);
    s.textContent = C.sources[source].name;
    return s;
  }
  function card(r) {
    const [m, l, unit, exemplars] = C.units[r.unit];
    const model = C.models[m], layer = model.layers[l];
    const base = model.slug + "/" + layer.slug + "/";
    const li = document.createElement("li");
    li.className = "card";
    const a = document.createElement("a");
    a.className = "unit-link";
    a.href = base + unit + ".html";
    if (exemplars > 0) {
      const img = document.createElement("img");
      img.src = base + "img/" + unit + ".jpg";
      img.loading = "lazy";
      img.alt = "Unit " + unit + ": its " + exemplars + " exemplars, the regions where it fires lit and outlined";
      a.appendChild(img);
    }
    const no = document.createElement("span");
    no.className = "unit-no";
    no.textContent = model.name + " · " + layer.name + " · unit " + unit;
    a.appendChild(no);
    li.appendChild(a);
    const ul = document.createElement("ul");
    ul.className = "texts";
    for (const id of r.texts) {
      const t = C.texts[id];
      const item = document.createElement("li");
      item.appendChild(badge(t[1]));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(highlighted(t[2]));
      ul.appendChild(item);
    }
    li.appendChild(ul);
    return li;
  }
  function showMore() {
    const end = Math.min(found.length, shown + PAGE);
    const frag = document.createDocumentFragment();
    for (let i = shown; i < end; i++) frag.appendChild(card(found[i]));
    results.appendChild(frag);
    shown = end;
    more.hidden = shown >= found.length;
  }
  function run(push) {
    const q = qInput.value.trim();
    const model = number(modelSel.value), layer = number(layerSel.value), source = number(sourceSel.value);
    results.textContent = "";
    shown = 0;
    if (q === "" && model === null && source === null) {
      found = [];
      more.hidden = true;
      status.textContent = C.units.length + " units, " + C.texts.length + " descriptions (index read in " + Math.round(loadMs) + " ms). Type a word.";
      return;
    }
    const t0 = performance.now();
    query = parse(q);
    found = search(q, model, layer, source);
    const ms = performance.now() - t0;
    const texts = found.reduce((n, r) => n + r.texts.length, 0);
    status.textContent = found.length + (found.length === 1 ? " unit" : " units") + " (" + texts + (texts === 1 ? " description" : " descriptions") + ") in " + ms.toFixed(1) + " ms";
    status.dataset.ms = String(ms);
    showMore();
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (model !== null) params.set("model", String(model));
    if (layer !== null) params.set("layer", String(layer));
    if (source !== null) params.set("source", String(source));
    const url = "?" + params.toString();
    if (push && url !== location.search) history.replaceState(null, "", url);
  }

  const params = new URLSearchParams(location.search);
  qInput.value = params.get("q") || "";
  if (params.get("model") !== null) modelSel.value = params.get("model");
  fillLayers(params.get("layer"));
  if (params.get("source") !== null) sourceSel.value = params.get("source");
  form.addEventListener("submit", function (e) { e.preventDefault(); run(true); });
  let pending = null;
  qInput.addEventListener("input", function () {
    clearTimeout(pending);
    pending = setTimeout(() => run(true), 120);
  });
  modelSel.addEventListener("change", function () { fillLayers(null); run(true); });
  layerSel.addEventListener("change", () => run(true));
  sourceSel.addEventListener("change", () => run(true));
  more.addEventListener("click", showMore);
  run(false);
  form.dataset.ready = "true";
})();
