// Submit the vote form as soon as a person's browser shows the page. Mail scanners fetch the
// link without running this, so their GETs record nothing. Remember per tab that this link was
// submitted once, so going Back after "Undo" does not vote again.
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosubmit]");
  if (!form) {
    return;
  }
  var key = "paperwire:" + form.getAttribute("action");
  try {
    if (window.sessionStorage.getItem(key)) {
      form.querySelector("[data-waiting]").textContent = "Press the button to record your vote.";
      return;
    }
    window.sessionStorage.setItem(key, "1");
  } catch (e) {
    // storage disabled: submitting again is harmless, votes are idempotent
  }
  form.submit();
})();
