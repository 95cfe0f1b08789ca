// Shared by the pages of kube-recorder's web UI. Every value from the server goes into the page
// as text (textContent, element properties): never as HTML.
"use strict";

const KR = (() => {
  /** An error answer of the read API, with its HTTP status. */
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** GET a JSON endpoint of the read API (the session cookie goes along). */
  async function api(path) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && typeof body.error === "string") message = body.error;
      } catch (_) {
        // Not JSON: keep the status line.
      }
      throw new ApiError(response.status, message);
    }
    return response.json();
  }

  /** An element with properties and children (strings become text nodes). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  /** Unix seconds as local `YYYY-MM-DD HH:MM:SS`. */
  function time(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
    const d = new Date(seconds * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  /** Seconds as `1h02m03s`, `2m03s` or `3.4s`. */
  function duration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
    if (seconds < 60) return `${seconds.toFixed(1)}s`;
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h > 0 ? `${h}h${pad(m)}m${pad(s % 60)}s` : `${m}m${pad(s % 60)}s`;
  }

  /** Who made a session: the login name, else the node's tags, else the node. */
  function who(meta) {
    if (meta.srcNodeUser) return meta.srcNodeUser;
    if (Array.isArray(meta.srcNodeTags) && meta.srcNodeTags.length) return meta.srcNodeTags.join(",");
    return meta.srcNode || "";
  }

  function show(id, visible) {
    const node = document.getElementById(id);
    if (node) node.hidden = !visible;
  }

  /** Shows the login form (401), the refusal (403) or the content, as the viewer check says. */
  function showAccess(error) {
    show("content", !error);
    show("login", error instanceof ApiError && error.status === 401);
    show("denied", error instanceof ApiError && error.status !== 401);
    if (error instanceof ApiError && error.status !== 401) {
      document.getElementById("denied-reason").textContent = error.message;
    }
  }

  async function postJson(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  /**
   * Finds out who the viewer is; calls `start` once the viewer may read (at once, or after a
   * login). Wires the login form and the logout button.
   */
  async function whenAllowed(start) {
    const form = document.getElementById("login-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("token");
      const error = document.getElementById("login-error");
      error.textContent = "";
      const response = await postJson("/ui/login", { token: input.value });
      input.value = "";
      if (response.ok) {
        check();
      } else {
        let message = `${response.status}`;
        try {
          message = (await response.json()).error || message;
        } catch (_) {
          // keep the status
        }
        error.textContent = `Sign-in failed: ${message}`;
      }
    });
    document.getElementById("logout").addEventListener("click", async () => {
      await postJson("/ui/logout", {});
      window.location.reload();
    });
    let started = false;
    async function check() {
      try {
        const me = await api("/api/whoami");
        document.getElementById("who").textContent = `${me.name} (${me.via})`;
        show("logout", me.via === "token");
        showAccess(null);
        if (!started) {
          started = true;
          start();
        }
      } catch (error) {
        showAccess(error);
      }
    }
    check();
  }

  return { ApiError, api, el, time, duration, who, showAccess, whenAllowed };
})();
