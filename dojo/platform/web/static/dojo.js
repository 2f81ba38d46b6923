/* Dojo worker platform: the JavaScript every page shares (API calls with CSRF, login by
 * wallet or recovery code, a new recovery code, subscription keys, next task, miner keys and
 * invites, copy buttons). No framework, no build step. */
"use strict";

const Dojo = (() => {
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
  const KEY_STARTS = ["dojo_sub_", "dojo_api_", "sk-"];

  /* The CSRF token the page carries: bound to this browser's session by the server. */
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return (meta && meta.content) || "";
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail || `The server answered ${status}.`);
      this.status = status;
    }
  }

  async function api(method, url, body) {
    method = method.toUpperCase();
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (UNSAFE.has(method)) headers["x-csrf-token"] = csrfToken();
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "Could not reach the platform. Check your connection and try again.");
    }
    if (response.status === 204) return null;
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (err) { data = { detail: text }; }
    }
    if (!response.ok) {
      let detail = data && data.detail;
      if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
      if (response.status === 401) detail = detail || "Your session has ended. Log in again.";
      throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
    }
    return data;
  }

  function showError(el, err) {
    if (!el) return;
    el.textContent = err instanceof Error ? err.message : String(err);
    el.hidden = false;
  }

  function flash(message) {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = message;
    el.hidden = false;
  }

  /* The id of a task as the API returns it, whatever envelope it comes in. */
  function taskIdOf(data) {
    if (!data) return null;
    if (data.body !== undefined && typeof data.body === "object" && data.body !== null) return taskIdOf(data.body);
    return data.id || data.taskId || (data.task && (data.task.id || data.task.taskId)) || null;
  }

  /* Hold the next task for this worker and open it; none left: back to the list. */
  async function openNextTask() {
    const data = await api("POST", "/api/v1/worker/tasks/next");
    const id = taskIdOf(data);
    window.location.assign(id ? `/tasks/${encodeURIComponent(id)}` : "/tasks?none=1");
  }

  function toHex(str) {
    return "0x" + Array.from(new TextEncoder().encode(str), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function walletLogin(button) {
    const eth = window.ethereum;
    if (!eth) {
      document.getElementById("wallet-missing").hidden = false;
      return;
    }
    button.disabled = true;
    try {
      const accounts = await eth.request({ method: "eth_requestAccounts" });
      const address = accounts && accounts[0];
      if (!address) throw new Error("The wallet shared no account.");
      const challenge = await api("POST", "/api/v1/worker/challenge", { address });
      // EIP-191 personal_sign: params are [message as hex, address].
      const signature = await eth.request({ method: "personal_sign", params: [toHex(challenge.message), address] });
      await api("POST", "/api/v1/worker/login", { address, signature, nonce: challenge.nonce });
      window.location.assign(nextPath());
    } catch (err) {
      const help = document.getElementById("wallet-help");
      help.classList.add("error");
      help.setAttribute("role", "alert");
      help.textContent = err && err.code === 4001 ? "You declined the signature request." : (err.message || String(err));
    } finally {
      button.disabled = false;
    }
  }

  function initLogin() {
    const button = document.getElementById("wallet-login");
    if (!button) return;
    if (!window.ethereum) document.getElementById("wallet-missing").hidden = false;
    button.addEventListener("click", () => walletLogin(button));
  }

  /* Where to go after logging in: the page's ?next= when it is a path on this site, else the tasks. */
  function nextPath() {
    const next = new URLSearchParams(window.location.search).get("next") || "";
    return /^\/(?![\/\\])/.test(next) ? next : "/tasks";
  }

  /* "Have a recovery code?" on the login page: back in to the same invited worker. */
  function initRecover() {
    const form = document.getElementById("recover-form");
    if (!form) return;
    const details = document.getElementById("recover");
    const input = form.elements.code;
    const error = document.getElementById("recover-error");
    // /login#recover (from an invite page) opens the form; the focus waits for the browser's
    // own move to the fragment, which would take it away again.
    const openOnHash = () => {
      if (window.location.hash !== "#recover") return;
      details.open = true;
      setTimeout(() => input.focus(), 0);
    };
    window.addEventListener("load", openOnHash);
    window.addEventListener("hashchange", openOnHash);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const code = input.value.trim();
      if (!code) return showError(error, "Enter the recovery code you saved when you joined; it starts with dojo-rc-.");
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await api("POST", "/api/v1/worker/recover", { code });
        window.location.assign(nextPath());
      } catch (err) {
        button.disabled = false;
        showError(error, err.status === 401
          ? "That recovery code does not work. Check it letter by letter; if you made a newer code, only the newest one works. Without a working code, ask your miner for a new invite link (it makes a new account)."
          : err);
        input.focus();
      }
    });
  }

  /* "Make a new recovery code" on the history page: shown once; the old code stops working. */
  function initNewRecoveryCode() {
    const button = document.getElementById("new-recovery");
    if (!button) return;
    const result = document.getElementById("new-recovery-result");
    const error = document.getElementById("recovery-error");
    button.addEventListener("click", async () => {
      button.disabled = true;
      error.hidden = true;
      try {
        const data = await api("POST", "/api/v1/worker/recovery-code");
        document.getElementById("new-recovery-code").textContent = data.code;
        result.hidden = false;
      } catch (err) {
        showError(error, err);
      } finally {
        button.disabled = false;
      }
    });
  }

  function initSubscriptions() {
    const form = document.getElementById("add-subscription");
    if (form) {
      const error = document.getElementById("add-subscription-error");
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.hidden = true;
        const name = form.elements.name.value.trim();
        const key = form.elements.key.value.trim();
        if (!name) return showError(error, "Give the key a name, e.g. your miner's team.");
        // dojo_api_ (a pasted API key) goes to the server, which says what it is; sk- keys are the old form.
        if (!KEY_STARTS.some((start) => key.startsWith(start))) {
          return showError(error, "A subscription key starts with dojo_sub_. Copy the whole key from your miner.");
        }
        try {
          await api("POST", "/api/v1/worker/subscriptions", { name, key });
          window.location.assign("/keys?added=1");
        } catch (err) {
          showError(error, err);
        }
      });
    }
    document.querySelectorAll("[data-remove-subscription]").forEach((button) => {
      button.addEventListener("click", async () => {
        const id = button.dataset.removeSubscription;
        button.disabled = true;
        try {
          await api("DELETE", `/api/v1/worker/subscriptions/${encodeURIComponent(id)}`);
          const row = button.closest("tr");
          flash(row.hasAttribute("data-by-invite") ? "You left the team; coming back takes a new invite link." : "Key removed.");
          row.remove();
        } catch (err) {
          button.disabled = false;
          flash(err.message);
        }
      });
    });
  }

  function initTaskList() {
    const next = document.getElementById("next-task");
    if (!next) return;
    next.addEventListener("click", async () => {
      next.disabled = true;
      try {
        await openNextTask();
      } catch (err) {
        next.disabled = false;
        flash(err.message);
      }
    });
    const params = new URLSearchParams(window.location.search);
    if (params.has("none")) flash("No task is waiting for you right now. Well done!");
    if (params.has("submitted")) flash("Answer saved.");
  }

  function initMinerLogin() {
    const challengeForm = document.getElementById("miner-challenge");
    if (!challengeForm) return;
    const sessionForm = document.getElementById("miner-session");
    const error = document.getElementById("miner-login-error");
    let challenge = null;
    challengeForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      try {
        const hotkey = challengeForm.elements.hotkey.value.trim();
        challenge = { hotkey, ...(await api("POST", "/api/v1/miner/challenge", { hotkey })) };
        document.getElementById("miner-message").value = challenge.message;
        sessionForm.hidden = false;
        document.getElementById("miner-signature").focus();
      } catch (err) {
        showError(error, err);
      }
    });
    sessionForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      try {
        let signature = sessionForm.elements.signature.value.trim();
        if (signature && !signature.startsWith("0x")) signature = "0x" + signature;
        await api("POST", "/api/v1/miner/session", { hotkey: challenge.hotkey, nonce: challenge.nonce, signature });
        window.location.assign("/miner");
      } catch (err) {
        showError(error, err);
      }
    });
  }

  /* Put text on the clipboard; where the Clipboard API is unavailable (a page not served
   * from a secure context), copy a selection the old way. */
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = Object.assign(document.createElement("textarea"), { value: text, readOnly: true });
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    if (!copied) throw new Error("Could not copy: select the text and copy it yourself.");
  }

  /* Every [data-copy-from="ID"] button copies the value (or text) of element ID. Delegated,
   * so buttons revealed or added later work too. */
  function initCopyButtons() {
    document.addEventListener("click", async (event) => {
      const button = event.target.closest("[data-copy-from]");
      if (!button) return;
      const source = document.getElementById(button.dataset.copyFrom);
      if (!source) return;
      const text = "value" in source ? source.value : source.textContent;
      const label = button.dataset.label || button.textContent;
      button.dataset.label = label;
      try {
        await copyText(text);
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = label; }, 2000);
      } catch (err) {
        if (source.select) source.select();
        flash(err.message || "Could not copy: select the text and copy it yourself.");
      }
    });
  }

  function markKeyDisabled(item) {
    item.classList.add("key-disabled");
    item.dataset.disabled = "";
    const code = item.querySelector("code");
    if (code && !code.querySelector("s")) code.replaceChildren(Object.assign(document.createElement("s"), { textContent: code.textContent }));
    const badge = item.querySelector(".badge");
    if (badge) Object.assign(badge, { className: "badge", textContent: "disabled" });
  }

  function initMinerKeys() {
    document.querySelectorAll("[data-key-kind]").forEach((column) => {
      const kind = column.dataset.keyKind;
      const out = column.querySelector(".new-key");
      column.querySelector("[data-generate-key]").addEventListener("click", async () => {
        try {
          const data = await api("POST", `/api/v1/miner/${kind}`);
          out.querySelector("[data-new-key]").textContent = data.key;
          out.hidden = false;
        } catch (err) {
          flash(err.message);
        }
      });
      column.querySelectorAll("[data-disable-key]").forEach((button) => {
        button.addEventListener("click", async () => {
          try {
            await api("DELETE", `/api/v1/miner/${kind}/${encodeURIComponent(button.dataset.disableKey)}`);
            markKeyDisabled(button.closest("li"));
            button.remove();
          } catch (err) {
            flash(err.message);
          }
        });
      });
    });
  }

  function initMinerInvite() {
    const button = document.getElementById("invite-worker");
    if (!button) return;
    const result = document.getElementById("invite-result");
    const error = document.getElementById("invite-error");
    button.addEventListener("click", async () => {
      button.disabled = true;
      error.hidden = true;
      try {
        const data = await api("POST", "/api/v1/miner/invites");
        document.getElementById("invite-url").value = data.url;
        const expires = document.getElementById("invite-expires");
        expires.dateTime = data.expiresAt;
        expires.textContent = new Date(data.expiresAt).toUTCString().replace("GMT", "UTC");
        result.hidden = false;
        button.textContent = "Invite another worker";
      } catch (err) {
        showError(error, err);
      } finally {
        button.disabled = false;
      }
    });
  }

  function initLogout() {
    document.querySelectorAll("[data-logout]").forEach((button) => {
      button.addEventListener("click", async () => {
        try {
          await api("POST", `/api/v1/${button.dataset.logout}/logout`);
        } catch (err) {
          // an expired session is as good as logged out
        }
        window.location.assign(button.dataset.logout === "miner" ? "/miner/login" : "/login");
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    initLogout();
    initLogin();
    initRecover();
    initNewRecoveryCode();
    initSubscriptions();
    initTaskList();
    initMinerLogin();
    initMinerKeys();
    initMinerInvite();
    initCopyButtons();
    if (new URLSearchParams(window.location.search).has("added")) flash("Key added. Its miner's tasks now appear under Tasks.");
  });

  return { api, csrfToken, flash, showError, openNextTask, ApiError, copyText };
})();
