// One recording: the player (following the session live while it is recorded), its metadata and
// its seal. The page's URL is the recording's shareable link.
"use strict";

(() => {
  const { api, el, time, duration, who } = KR;
  const id = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
  const base = `/api/recordings/${encodeURIComponent(id)}`;

  function fillMeta(meta) {
    const rows = [
      ["ID", meta.id],
      ["User", who(meta)],
      ["Node", meta.srcNode],
      ["Namespace", meta.namespace],
      ["Pod", meta.pod],
      ["Container", meta.container],
      ["Session", meta.sessionType],
      ["Command", meta.command],
      ["Started", time(meta.start || meta.receivedAt)],
      ["Ended", time(meta.finishedAt)],
      ["Duration", duration(meta.duration)],
      ["Outcome", meta.reason ? `${meta.outcome}: ${meta.reason}` : meta.outcome],
      ["Exit code", meta.exitCode === undefined ? "" : String(meta.exitCode)],
      ["Terminal", meta.width && meta.height ? `${meta.width}×${meta.height}` : ""],
      ["Size", `${meta.bytes} bytes, ${meta.events} events`],
      ["Protocol", meta.protocol],
      ["Encrypted at rest", meta.encrypted ? "yes (age)" : ""],
      ["Problem in the data", meta.malformed],
    ];
    const list = document.getElementById("meta");
    list.replaceChildren();
    for (const [name, value] of rows) {
      if (value === undefined || value === null || value === "") continue;
      list.append(el("dt", {}, name), el("dd", {}, String(value)));
    }
    document.getElementById("title").textContent =
      [meta.command || "Recording", meta.pod ? `in ${meta.namespace || ""}/${meta.pod}` : ""].join(" ").trim();
    document.title = `${meta.id} · kube-recorder`;
  }

  async function showSeal() {
    const seal = document.getElementById("seal");
    const problems = document.getElementById("seal-problems");
    try {
      const report = await api(`${base}/verify`);
      const text = {
        verified: "✔ Verified: the stored file matches its signed seal.",
        recording: "Not sealed yet: the session is still being recorded.",
        unsealed: "This recorder does not seal recordings.",
        failed: "✘ Verification FAILED: the stored file does not match its seal.",
      }[report.status] || report.status;
      seal.textContent = report.keyId ? `${text} (key ${report.keyId})` : text;
      seal.className = `seal ${report.status}`;
      problems.replaceChildren(...(report.problems || []).map((p) => el("li", {}, `${p.subject}: ${p.reason}`)));
    } catch (error) {
      seal.textContent = `Cannot check the seal: ${error.message}`;
      seal.className = "seal failed";
    }
  }

  /**
   * The cast, ready for the player: a session without a terminal (kube-auth-proxy writes width
   * and height 0) gets 80x24 and carriage returns before its line feeds, as a terminal would have
   * added; lines that are not events are left out rather than stopping the player.
   */
  async function castForDisplay() {
    const response = await fetch(base, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`cannot load the cast: ${response.status}`);
    const lines = (await response.text()).split("\n").filter((line) => line.length > 0);
    const header = JSON.parse(lines[0]);
    const terminal = header.width > 0 && header.height > 0;
    if (!terminal) {
      header.width = 80;
      header.height = 24;
    }
    const events = [];
    for (const line of lines.slice(1)) {
      let event;
      try {
        event = JSON.parse(line);
      } catch (_) {
        continue;
      }
      if (!Array.isArray(event) || event.length < 3 || typeof event[0] !== "number") continue;
      if (!terminal && event[1] === "o" && typeof event[2] === "string") {
        event[2] = event[2].replace(/\r?\n/g, "\r\n");
      }
      events.push(event);
    }
    return [header, ...events];
  }

  function play(meta) {
    const container = document.getElementById("player");
    const note = document.getElementById("player-note");
    if (meta.encrypted) {
      note.textContent = "This recording is encrypted at rest to an auditor's key: the recorder " +
        "cannot play it. Download it and play it with `kube-recorder play --identity FILE`.";
      return;
    }
    if (meta.kind === "port-forward-capture") {
      note.textContent = "A port-forward capture has no terminal to play; download it instead.";
      return;
    }
    const size = {};
    if (meta.width) size.cols = meta.width;
    if (meta.height) size.rows = meta.height;
    if (meta.outcome === "recording") {
      document.getElementById("live-badge").hidden = false;
      const player = AsciinemaPlayer.create(
        { driver: "eventsource", url: `${base}/live`, bufferTime: 0 },
        container,
        { autoPlay: true, fit: false, terminalFontSize: "14px", ...size },
      );
      player.addEventListener("ended", async () => {
        document.getElementById("live-badge").hidden = true;
        note.textContent = "The session has ended. Reload the page to replay it from the start.";
        try {
          fillMeta(await api(`${base}/meta`));
        } catch (_) {
          // keep what is shown
        }
        showSeal();
      });
    } else {
      AsciinemaPlayer.create({ data: castForDisplay }, container, {
        autoPlay: true,
        idleTimeLimit: 2,
        fit: false,
        terminalFontSize: "14px",
      });
    }
  }

  async function start() {
    document.getElementById("share").href = window.location.href;
    document.getElementById("download").href = base;
    try {
      const meta = await api(`${base}/meta`);
      fillMeta(meta);
      play(meta);
      showSeal();
    } catch (error) {
      document.getElementById("title").textContent = error.status === 404
        ? "No such recording (or not one you may see)"
        : `Cannot load the recording: ${error.message}`;
      document.getElementById("seal").textContent = "";
    }
  }

  KR.whenAllowed(start);
})();
