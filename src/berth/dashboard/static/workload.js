// A workload's page: follow the shown run's output live, and reveal secrets on click.
(function () {
  "use strict";
  const log = document.getElementById("log");
  if (log && log.dataset.follow && window.EventSource) {
    // The stream starts from the run's first line: replace what the page was rendered with.
    let fresh = true;
    const source = new EventSource(log.dataset.follow);
    source.addEventListener("line", function (event) {
      if (fresh) { log.textContent = ""; fresh = false; }
      log.textContent += JSON.parse(event.data) + "\n";
    });
    source.addEventListener("end", function () { source.close(); });
  }
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-reveal]");
    if (!button) return;
    const answer = await window.berth.post(button.dataset.url, { key: button.dataset.reveal });
    const body = await answer.json();
    document.getElementById(button.dataset.target).textContent = answer.ok ? body.value : body.error;
  });
})();
