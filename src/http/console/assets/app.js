// Cartwright console: a few lines of our own. Every page works without them.
// - A form with data-confirm asks before it is sent.
// - A page with data-refresh reloads itself every N seconds, unless paused (the choice is
//   remembered), the tab is hidden, or the operator is typing in a field.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var seconds = Number(document.body.getAttribute("data-refresh") || 0);
  var toggle = document.getElementById("refresh-toggle");
  if (!seconds || !toggle) {
    return;
  }
  var key = "cartwright.console.refresh-paused";
  var paused = window.localStorage.getItem(key) === "1";
  function show() {
    toggle.textContent = paused ? "Resume auto-refresh" : "Pause auto-refresh";
  }
  toggle.hidden = false;
  show();
  toggle.addEventListener("click", function () {
    paused = !paused;
    window.localStorage.setItem(key, paused ? "1" : "0");
    show();
  });
  window.setInterval(function () {
    var typing = document.activeElement && /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (!paused && !document.hidden && !typing) {
      window.location.reload();
    }
  }, seconds * 1000);
})();
