// The worker table: money and blocks are asked about once more before they happen. Without
// scripts the forms still work (and a bonus form sent twice still pays once: its key).
"use strict";
(function () {
  for (const form of document.querySelectorAll("form.actions")) {
    form.addEventListener("submit", (ev) => {
      const button = ev.submitter;
      if (!button) return;
      const worker = form.dataset.worker;
      let question = null;
      if (button.value === "bonus") {
        const amount = form.querySelector("input[name=cents]").value.trim();
        const reason = form.querySelector("input[name=reason]").value.trim();
        question = `Pay a bonus of $${amount.replace(/^\$/, "")} to ${worker}` +
          (reason ? ` for "${reason}"` : "") + "? Bonuses cannot be taken back.";
      } else if (button.value === "block") {
        question = `Block ${worker}? They can finish nothing new in any project until unblocked.`;
      }
      if (question && !window.confirm(question)) ev.preventDefault();
    });
  }
})();
