// receiptd console: a little help where JavaScript runs; every page works without it.
"use strict";
document.addEventListener("keydown", (event) => {
  // "/" focuses the customer search, as in many consoles (not while typing in a field).
  const target = event.target;
  const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement
    || target instanceof HTMLSelectElement;
  if (event.key === "/" && !typing) {
    const search = document.getElementById("q");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  }
});
