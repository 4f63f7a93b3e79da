// After a saved description in MTurk mode: send the HIT to MTurk's externalSubmit at once. Without
// JS the worker presses the button.
"use strict";
(function () {
  const form = document.getElementById("mturk-submit");
  if (form) form.submit();
})();
