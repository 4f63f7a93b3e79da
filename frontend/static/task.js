// The task page, enhanced: live validation by the server's own rules, the lease countdown, a
// lightbox for the exemplars, and keyboard shortcuts. The page works without it.
"use strict";
(function () {
  const form = document.getElementById("describe");
  const box = document.getElementById("description");
  const verdict = document.getElementById("verdict");
  const submit = document.getElementById("submit");

  // Live validation: ask the server (POST /w/check), which applies exactly the rules a submit
  // does; the browser's own constraint check then blocks a submit the server would refuse.
  if (form && box && !box.disabled) {
    const session = form.querySelector("input[name=session]");
    let timer = null;
    let seq = 0;
    const check = async () => {
      const mine = ++seq;
      try {
        const res = await fetch("/w/check", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          credentials: "same-origin",
          body: JSON.stringify({
            project: form.dataset.project,
            description: box.value,
            session: session ? session.value : null,
          }),
        });
        if (!res.ok || mine !== seq) return;
        const body = await res.json();
        box.setCustomValidity(body.ok ? "" : body.error);
        verdict.textContent = body.ok ? "Looks good." : body.error;
        verdict.className = body.ok ? "ok" : "error";
      } catch (e) {
        // Offline or the server restarting: the submit will still be checked.
      }
    };
    box.addEventListener("input", () => {
      // Until the server answers, the last verdict no longer holds.
      box.setCustomValidity("");
      verdict.textContent = "";
      verdict.className = "";
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    if (box.value) check();
  }

  // The lease countdown, from the server's clock (data-now) moved by the time since load.
  const lease = document.getElementById("lease");
  if (lease) {
    const expires = Number(lease.dataset.expires);
    const offset = Number(lease.dataset.now) - Date.now();
    const tick = () => {
      const left = Math.max(0, expires - (Date.now() + offset));
      const s = Math.ceil(left / 1000);
      lease.textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
      lease.parentElement.classList.toggle("low", s <= 60);
      if (left <= 0) {
        lease.textContent = "over: this set went back to the pool";
        if (submit) submit.disabled = true;
        return;
      }
      setTimeout(tick, 1000 - (left % 1000 || 1000) + 5);
    };
    tick();
  }

  // Outlines: drawn from each exemplar's mask, for regions that dimming alone does not set apart
  // from a bright background (small screens, washed-out photos). Yellow inside a dark rim reads
  // on light and dark images and does not rely on telling red from green.
  const outlines = new Map();
  const outlineOf = (src) => {
    if (!outlines.has(src)) {
      outlines.set(src, new Promise((resolve) => {
        const img = new Image();
        img.onload = () => {
          const w = img.naturalWidth, h = img.naturalHeight;
          const c = document.createElement("canvas");
          c.width = w; c.height = h;
          const g = c.getContext("2d");
          g.drawImage(img, 0, 0);
          const src = g.getImageData(0, 0, w, h).data;
          const inside = (x, y) => x >= 0 && y >= 0 && x < w && y < h && src[(y * w + x) * 4] > 0;
          const near = (x, y, want, r) => {
            for (let dy = -r; dy <= r; dy++)
              for (let dx = -r; dx <= r; dx++)
                if (inside(x + dx, y + dy) === want) return true;
            return false;
          };
          const out = g.createImageData(w, h);
          for (let y = 0; y < h; y++) {
            for (let x = 0; x < w; x++) {
              const i = (y * w + x) * 4;
              let rgb = null;
              if (inside(x, y) && near(x, y, false, 2)) rgb = [255, 212, 0];
              else if (!inside(x, y) && near(x, y, true, 1)) rgb = [0, 0, 0];
              if (rgb) { out.data[i] = rgb[0]; out.data[i + 1] = rgb[1]; out.data[i + 2] = rgb[2]; out.data[i + 3] = 255; }
            }
          }
          g.putImageData(out, 0, 0);
          resolve(c);
        };
        img.onerror = () => resolve(null);
        img.src = src;
      }));
    }
    return outlines.get(src);
  };
  const toggle = document.getElementById("outline");
  const cells = Array.from(document.querySelectorAll("#grid .cell"));
  const overlay = async (holder, mask, on) => {
    // A canvas, not an image: the page's policy allows no data: URLs.
    let layer = holder.querySelector("canvas.outline");
    if (!on) { if (layer) layer.hidden = true; return; }
    const drawn = await outlineOf(mask);
    // Turned off while the outline was being drawn.
    if (!drawn || !(toggle && toggle.checked)) return;
    if (!layer) {
      layer = document.createElement("canvas");
      layer.className = "outline";
      layer.setAttribute("aria-hidden", "true");
      holder.appendChild(layer);
    }
    layer.width = drawn.width;
    layer.height = drawn.height;
    layer.getContext("2d").drawImage(drawn, 0, 0);
    layer.hidden = false;
  };
  const applyOutlines = () => {
    const on = !!(toggle && toggle.checked);
    document.body.classList.toggle("outlined", on);
    cells.forEach((cell) => overlay(cell, cell.dataset.mask, on));
  };
  if (toggle) {
    try { toggle.checked = localStorage.getItem("milan-outline") === "1"; } catch (e) { /* private mode */ }
    toggle.addEventListener("change", () => {
      try { localStorage.setItem("milan-outline", toggle.checked ? "1" : "0"); } catch (e) { /* private mode */ }
      applyOutlines();
      if (dialog && dialog.open) show(current);
    });
  }

  // Click (or Enter on) an exemplar to see it large; arrows and buttons move, Esc closes.
  const dialog = document.getElementById("lightbox");
  const big = document.getElementById("lightbox-img");
  const count = document.getElementById("lightbox-count");
  let current = 0;
  const show = (i) => {
    current = (i + cells.length) % cells.length;
    big.src = cells[current].href;
    big.alt = cells[current].querySelector("img").alt;
    if (count) count.textContent = (current + 1) + " of " + cells.length;
    overlay(big.parentElement, cells[current].dataset.mask, !!(toggle && toggle.checked));
  };
  if (dialog && typeof dialog.showModal === "function") {
    cells.forEach((cell, i) => {
      cell.addEventListener("click", (ev) => {
        ev.preventDefault();
        show(i);
        dialog.showModal();
      });
    });
    dialog.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowRight") show(current + 1);
      if (ev.key === "ArrowLeft") show(current - 1);
    });
    const prev = document.getElementById("lightbox-prev");
    const next = document.getElementById("lightbox-next");
    if (prev) prev.addEventListener("click", () => show(current - 1));
    if (next) next.addEventListener("click", () => show(current + 1));
    dialog.addEventListener("close", () => cells[current] && cells[current].focus());
  }
  applyOutlines();
})();
