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

  // Click (or Enter on) an exemplar to see it large; arrows move, Esc closes.
  const dialog = document.getElementById("lightbox");
  const big = document.getElementById("lightbox-img");
  const cells = Array.from(document.querySelectorAll("#grid .cell"));
  let current = 0;
  const show = (i) => {
    current = (i + cells.length) % cells.length;
    big.src = cells[current].href;
    big.alt = cells[current].querySelector("img").alt;
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
    dialog.addEventListener("close", () => cells[current] && cells[current].focus());
  }
})();
