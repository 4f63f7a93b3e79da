// Review queue shortcuts: j/k move between descriptions, x ticks, a approves, r rejects (focus the
// feedback box first; Enter in it rejects), A approves everything ticked.
"use strict";
(function () {
  const items = Array.from(document.querySelectorAll(".work .item"));
  if (!items.length) return;
  let at = -1;
  const focus = (i) => {
    at = Math.max(0, Math.min(items.length - 1, i));
    items[at].focus();
    items[at].scrollIntoView({ block: "nearest" });
  };
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const typing = t instanceof HTMLInputElement && t.type !== "checkbox" || t instanceof HTMLTextAreaElement;
    if (typing) {
      if (ev.key === "Enter" && t.classList.contains("feedback")) {
        ev.preventDefault();
        const reject = t.parentElement.querySelector("button.reject");
        if (reject && t.value.trim()) reject.click();
      }
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const item = items[at];
    switch (ev.key) {
      case "j": focus(at + 1); break;
      case "k": focus(at - 1); break;
      case "x": {
        const box = item && item.querySelector("input[type=checkbox]");
        if (box && !box.disabled) box.checked = !box.checked;
        break;
      }
      case "a": {
        const b = item && item.querySelector("button.approve");
        if (b) b.click();
        break;
      }
      case "r": {
        const f = item && item.querySelector("input.feedback");
        if (f) { ev.preventDefault(); f.focus(); }
        break;
      }
      case "A": document.getElementById("approve-ticked").click(); break;
      default: return;
    }
  });
})();
