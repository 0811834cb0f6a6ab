// Submit the vote form as soon as a person's browser shows the page. Mail scanners fetch the
// link without running this, so their GETs record nothing.
//
// Each vote page this tab has shown is remembered (sessionStorage), and a page seen before is
// never submitted by script again: going Back after "Change" or "Undo" must not re-vote.
(function () {
  "use strict";
  var key = "paperwire:seen:" + window.location.pathname;
  var seen = false;
  try {
    seen = window.sessionStorage.getItem(key) === "1";
    window.sessionStorage.setItem(key, "1");
  } catch (e) {
    // storage disabled: submitting again is harmless, votes are idempotent
  }
  var form = document.querySelector("form[data-autosubmit]");
  if (!form) {
    return;
  }
  if (seen) {
    return; // the page already says "Press the button to record your ..."
  }
  form.querySelector("[data-waiting]").textContent = "Recording your vote…";
  form.submit();
})();
