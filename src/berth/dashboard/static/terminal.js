// The built-in terminal: xterm.js on the Containers API's terminal WebSocket
// (protocol berth.shell.v1: binary frames both ways, text frames for resize and exit).
(function () {
  "use strict";
  const host = document.getElementById("terminal");
  const state = document.getElementById("terminal-state");
  if (!host || !window.Terminal) return;
  if (!host.dataset.running) {
    // Show the terminal as soon as the box runs: its status arrives as a live event.
    document.addEventListener("berth:workload", function (event) {
      if (event.detail.workload_id === host.dataset.box && event.detail.status === "running") location.reload();
    });
    return;
  }
  const term = new window.Terminal({ cursorBlink: true, fontSize: 14, scrollback: 2000 });
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(host);
  fit.fit();
  window.berthTerminal = term;  // for people (and tests) who want to look at it
  const encoder = new TextEncoder();

  async function connect() {
    const answer = await window.berth.post("/boxes/" + host.dataset.box + "/terminal-ticket");
    const body = await answer.json();
    if (!answer.ok) { state.textContent = body.error || "The terminal is not available."; return; }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + location.host + "/compute/containers/" + host.dataset.box +
      "/terminal?token=" + encodeURIComponent(body.token) + "&cols=" + term.cols + "&rows=" + term.rows;
    const socket = new WebSocket(url, ["berth.shell.v1"]);
    socket.binaryType = "arraybuffer";
    socket.onopen = function () { state.textContent = "Connected."; term.focus(); };
    socket.onmessage = function (event) {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        if (message.type === "exit") state.textContent = "The shell exited (code " + message.code + ").";
        return;
      }
      term.write(new Uint8Array(event.data));
    };
    socket.onclose = function (event) {
      if (!state.textContent.startsWith("The shell exited")) state.textContent = "Disconnected" + (event.reason ? ": " + event.reason : ".");
    };
    term.onData(function (data) { if (socket.readyState === 1) socket.send(encoder.encode(data)); });
    term.onResize(function (size) {
      if (socket.readyState === 1) socket.send(JSON.stringify({ type: "resize", cols: size.cols, rows: size.rows }));
    });
    window.addEventListener("resize", function () { fit.fit(); });
  }
  connect();
})();
