// berth's dashboard: progressive behaviour on top of server-rendered pages. Pages work
// without it (forms post, links navigate); with it, they refresh themselves on live events.
(function () {
  "use strict";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  window.berth = { csrf: csrf };

  // POST with the CSRF header; every state-changing fetch goes through here.
  window.berth.post = function (url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body: body ? new URLSearchParams(body).toString() : "",
    });
  };

  async function refreshCount() {
    const badge = document.getElementById("pending-count");
    if (!badge) return;
    const answer = await fetch("/approvals-count", { credentials: "same-origin" });
    if (!answer.ok) return;
    const n = (await answer.json()).pending;
    badge.textContent = String(n);
    badge.setAttribute("aria-label", n + " pending");
    badge.classList.toggle("empty", n === 0);
  }

  async function refreshRegions(kind) {
    for (const region of document.querySelectorAll("[data-refresh]")) {
      const on = (region.dataset.on || "").split(" ");
      if (kind !== "resync" && !on.includes(kind)) continue;
      // Do not replace a form someone is typing in.
      if (region.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) continue;
      const answer = await fetch(region.dataset.refresh, { credentials: "same-origin" });
      if (answer.ok) region.innerHTML = await answer.text();
    }
  }

  if (document.body.dataset.live && window.EventSource) {
    const source = new EventSource("/events");
    // Page scripts listen for "berth:approval" and "berth:workload" on the document.
    for (const name of ["approval", "workload"]) {
      source.addEventListener(name, function (event) {
        document.dispatchEvent(new CustomEvent("berth:" + name, { detail: JSON.parse(event.data) }));
      });
    }
    source.addEventListener("approval", function () { refreshCount(); refreshRegions("approval"); });
    source.addEventListener("workload", function () { refreshRegions("workload"); });
    source.addEventListener("resync", function () { refreshCount(); refreshRegions("resync"); });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  // Buttons that copy a text (the ssh command) to the clipboard.
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = "Copied";
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  });

  // Forms that ask before a destructive action (delete).
  document.addEventListener("submit", function (event) {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
