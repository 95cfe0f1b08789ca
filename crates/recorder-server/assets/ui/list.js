// The list page: recordings (filters, search over output, live sessions appear at once) and API
// events.
"use strict";

(() => {
  const { api, el, time, duration, who, showAccess } = KR;

  /** The form's fields as a query string, times in Unix seconds, empty fields left out. */
  function query(form) {
    const params = new URLSearchParams();
    for (const [key, raw] of new FormData(form).entries()) {
      const value = String(raw).trim();
      if (!value) continue;
      if (form.elements[key].type === "datetime-local") {
        const at = new Date(value).getTime();
        if (Number.isFinite(at)) params.set(key, String(Math.floor(at / 1000)));
      } else {
        params.set(key, value);
      }
    }
    return params;
  }

  function outcomeCell(meta) {
    if (meta.outcome === "recording") {
      return el("td", {}, el("span", { class: "live" }, "● live"));
    }
    const cell = el("td", { class: meta.outcome }, meta.outcome);
    if (meta.reason) cell.title = meta.reason;
    return cell;
  }

  function recordingRow(meta) {
    const link = el("a", { href: `/ui/recordings/${encodeURIComponent(meta.id)}` },
      time(meta.start || meta.receivedAt));
    const where = [meta.namespace, meta.pod, meta.container].filter(Boolean).join(" / ");
    const command = el("td", { class: "command" }, meta.command || (meta.kind === "port-forward-capture" ? "(port-forward capture)" : ""));
    if (typeof meta.match === "string") {
      command.append(el("div", { class: "match" }, "… ", el("mark", {}, meta.match), " …"));
    }
    return el("tr", { dataset: { id: meta.id } },
      el("td", {}, link),
      el("td", {}, who(meta)),
      el("td", {}, where),
      command,
      el("td", {}, duration(meta.duration)),
      outcomeCell(meta),
      el("td", {}, meta.exitCode === undefined ? "" : String(meta.exitCode)));
  }

  let listing = 0;
  async function listRecordings() {
    const form = document.getElementById("filters");
    const status = document.getElementById("status");
    const params = query(form);
    const mine = ++listing;
    status.textContent = params.has("q") ? "Searching the recorded output…" : "Loading…";
    try {
      const items = await api(`/api/recordings?${params}`);
      if (mine !== listing) return;
      const body = document.querySelector("#recordings tbody");
      body.replaceChildren(...items.map(recordingRow));
      const live = items.filter((m) => m.outcome === "recording").length;
      status.textContent = `${items.length} recording${items.length === 1 ? "" : "s"}` +
        (live ? `, ${live} live` : "") + (params.has("q") ? ` with output matching “${params.get("q")}”` : "");
    } catch (error) {
      if (mine !== listing) return;
      status.textContent = error.message;
      if (error.status === 401 || error.status === 403) showAccess(error);
    }
  }

  function eventRow(event) {
    const k = event.kubernetes || {};
    const source = event.source || {};
    const request = event.request || {};
    const whoName = source.nodeUser || (Array.isArray(source.nodeTags) ? source.nodeTags.join(",") : "") ||
      source.node || (event.viewer && event.viewer.name) || "";
    const at = typeof event.timestamp === "number" ? time(event.timestamp) : String(event.timestamp || "");
    const what = request.method ? `${request.method} ${request.path || ""}` :
      (event.action ? `${event.action} ${event.recording || event.query || ""}` : "");
    return el("tr", {},
      el("td", {}, at),
      el("td", {}, event.type || ""),
      el("td", {}, whoName),
      el("td", {}, k.Verb || ""),
      el("td", {}, k.Namespace || ""),
      el("td", { class: "command" }, what));
  }

  async function listEvents() {
    const params = query(document.getElementById("event-filters"));
    const status = document.getElementById("event-status");
    status.textContent = "Loading…";
    try {
      const events = await api(`/api/events?${params}`);
      events.reverse();
      document.querySelector("#events tbody").replaceChildren(...events.map(eventRow));
      status.textContent = `${events.length} event${events.length === 1 ? "" : "s"}, newest first`;
    } catch (error) {
      status.textContent = error.message;
    }
  }

  function route() {
    const events = window.location.hash === "#events";
    document.getElementById("recordings-view").hidden = events;
    document.getElementById("events-view").hidden = !events;
    document.getElementById("tab-recordings").classList.toggle("active", !events);
    document.getElementById("tab-events").classList.toggle("active", events);
    if (events) listEvents();
  }

  /** New sessions, and sessions that end, show up without a reload. */
  function watch() {
    const source = new EventSource("/api/recordings/watch");
    let timer;
    source.addEventListener("changed", () => {
      clearTimeout(timer);
      timer = setTimeout(listRecordings, 100);
    });
  }

  function start() {
    const form = document.getElementById("filters");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      listRecordings();
    });
    form.addEventListener("reset", () => setTimeout(listRecordings, 0));
    document.getElementById("event-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      listEvents();
    });
    window.addEventListener("hashchange", route);
    route();
    listRecordings();
    watch();
  }

  KR.whenAllowed(start);
})();
