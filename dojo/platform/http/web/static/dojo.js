/* Dojo worker platform: the JavaScript every page shares (API calls with CSRF, login by
 * wallet or recovery code, a new recovery code, subscription keys, next task, miner keys and
 * invites, the miner's team, a question before anything that cannot be undone, copy
 * buttons). No framework, no build step. */
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

  /* ``options.keepalive``: the request outlives the page (a draft saved as the page goes). */
  async function api(method, url, body, options = {}) {
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
        keepalive: Boolean(options.keepalive),
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

  /* Ask before an action that cannot be undone: a modal dialog (Esc or Cancel: no), the
   * focus on Cancel, then back where it was. Resolves true only for the confirm button. */
  function confirmAction({ title, lines, confirm }) {
    return new Promise((resolve) => {
      const opener = document.activeElement;
      const dialog = Object.assign(document.createElement("dialog"), { className: "confirm-dialog" });
      dialog.setAttribute("aria-labelledby", "confirm-title");
      dialog.setAttribute("aria-describedby", "confirm-body");
      const heading = Object.assign(document.createElement("h2"), { id: "confirm-title", textContent: title });
      const body = Object.assign(document.createElement("div"), { id: "confirm-body" });
      for (const line of lines) body.appendChild(Object.assign(document.createElement("p"), { textContent: line }));
      const yes = Object.assign(document.createElement("button"), { type: "button", className: "btn btn-danger", textContent: confirm });
      const no = Object.assign(document.createElement("button"), { type: "button", className: "btn", textContent: "Cancel" });
      const actions = Object.assign(document.createElement("div"), { className: "confirm-actions" });
      actions.append(yes, no);
      dialog.append(heading, body, actions);
      document.body.appendChild(dialog);
      let answered = false;
      const done = (value) => {
        if (answered) return;
        answered = true;
        if (dialog.open) dialog.close();
        dialog.remove();
        if (opener && opener.focus && document.contains(opener)) opener.focus();
        resolve(value);
      };
      yes.addEventListener("click", () => done(true));
      no.addEventListener("click", () => done(false));
      dialog.addEventListener("cancel", (event) => { event.preventDefault(); done(false); });
      dialog.addEventListener("close", () => done(false));
      dialog.showModal();
      no.focus();
    });
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
        const row = button.closest("tr");
        const byInvite = row.hasAttribute("data-by-invite");
        const team = button.dataset.team || "this team";
        const kept = "Your answers so far stay under Your work.";
        const ok = await confirmAction(byInvite
          ? {
            title: `Leave ${team}?`,
            lines: ["You stop getting this miner's tasks at once.",
              `This cannot be undone: coming back takes a new invite link from the miner. ${kept}`],
            confirm: "Leave the team",
          }
          : {
            title: `Remove the key ${team}?`,
            lines: ["You stop getting this miner's tasks at once.",
              `To work for them again, add their subscription key again. ${kept}`],
            confirm: "Remove the key",
          });
        if (!ok) return;
        button.disabled = true;
        try {
          await api("DELETE", `/api/v1/worker/subscriptions/${encodeURIComponent(id)}`);
          flash(byInvite ? "You left the team; coming back takes a new invite link." : "Key removed.");
          const message = document.querySelector(`[data-message-for="${CSS.escape(id)}"]`);
          if (message) message.remove();
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

  /* A key just generated, as the list shows an active key (the page needs no reload). */
  function keyItem(data) {
    const item = document.createElement("li");
    Object.assign(item.dataset, { keyId: data.id, prefix: data.prefix, lastUsed: "", subscribers: "0" });
    const badge = Object.assign(document.createElement("span"), { className: "badge badge-ok", textContent: "active" });
    const note = Object.assign(document.createElement("span"), { className: "muted small", textContent: "made just now · never used" });
    const disable = Object.assign(document.createElement("button"), {
      type: "button", className: "btn btn-small btn-danger", textContent: "Disable",
    });
    disable.dataset.disableKey = data.id;
    disable.setAttribute("aria-label", `Disable key ${data.prefix}`);
    item.append(Object.assign(document.createElement("code"), { textContent: `${data.prefix}…` }), " ", badge, " ", note, " ", disable);
    return item;
  }

  /* What disabling the key in ``item`` does, for the question before it. */
  function disableWarning(kind, item) {
    const lastUsed = item.dataset.lastUsed;
    const lines = [];
    if (kind === "api-keys") {
      if (item.hasAttribute("data-in-use")) {
        lines.push(`Your miner used this key ${lastUsed}: it is most likely the DOJO_API_KEY your running miner uses.`,
          "Disabling it stops your miner from creating tasks for your workers and from returning their results, until you generate a new key, set DOJO_API_KEY to it and restart the miner.");
      } else {
        lines.push(lastUsed ? `Last used ${lastUsed}. Whatever uses it stops working at once.` : "This key was never used.");
      }
    } else {
      const workers = Number(item.dataset.subscribers || 0);
      lines.push(workers
        ? `${workers} worker${workers === 1 ? "" : "s"} joined your team with this key and lose${workers === 1 ? "s" : ""} access to your tasks at once.`
        : "No worker on your team uses this key; no one can join with it afterwards.");
    }
    lines.push("A disabled key cannot be turned back on.");
    return lines;
  }

  function initMinerKeys() {
    document.querySelectorAll("[data-key-kind]").forEach((column) => {
      const kind = column.dataset.keyKind;
      const label = kind === "api-keys" ? "API key" : "subscription key";
      const out = column.querySelector(".new-key");
      const list = column.querySelector(".key-list");
      column.querySelector("[data-generate-key]").addEventListener("click", async () => {
        try {
          const data = await api("POST", `/api/v1/miner/${kind}`);
          out.querySelector("[data-new-key]").textContent = data.key;
          out.hidden = false;
          const none = list.querySelector("[data-none]");
          if (none) none.remove();
          // Active keys come first in the list: the new one goes after the last of them.
          const firstDisabled = list.querySelector("[data-disabled]");
          list.insertBefore(keyItem(data), firstDisabled);
        } catch (err) {
          flash(err.message);
        }
      });
      column.addEventListener("click", async (event) => {
        const button = event.target.closest("[data-disable-key]");
        if (!button) return;
        const item = button.closest("li");
        const ok = await confirmAction({
          title: `Disable the ${label} ${item.dataset.prefix}…?`,
          lines: disableWarning(kind, item),
          confirm: "Disable the key",
        });
        if (!ok) return;
        try {
          await api("DELETE", `/api/v1/miner/${kind}/${encodeURIComponent(button.dataset.disableKey)}`);
          markKeyDisabled(item);
          for (const mark of item.querySelectorAll(".badge-open")) mark.remove();
          button.remove();
        } catch (err) {
          flash(err.message);
        }
      });
    });
  }

  /* The miner's team page: the message workers see, removing a worker, revoking an invite. */
  function initTeam() {
    const form = document.getElementById("team-message-form");
    if (form) {
      const error = document.getElementById("team-message-error");
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        error.hidden = true;
        try {
          const data = await api("PUT", "/api/v1/miner/team-message", { message: form.elements.message.value });
          flash(data.message ? "Message saved: your workers see it now." : "Message removed.");
        } catch (err) {
          showError(error, err);
        }
      });
    }
    document.querySelectorAll("[data-remove-worker]").forEach((button) => {
      button.addEventListener("click", async () => {
        const worker = button.dataset.removeWorker;
        const ok = await confirmAction({
          title: `Remove worker ${worker} from your team?`,
          lines: ["Their access to your tasks ends at once, and the places they hold go back to the queue. Their answers so far stay.",
            "Someone who joined with a subscription key can come back with it until you disable that key; an invited worker needs a new invite."],
          confirm: "Remove the worker",
        });
        if (!ok) return;
        try {
          await api("DELETE", `/api/v1/miner/team/${encodeURIComponent(worker)}`);
          button.closest("tr").remove();
          flash(`Worker ${worker} is off your team.`);
        } catch (err) {
          flash(err.message);
        }
      });
    });
    document.querySelectorAll("[data-revoke-invite]").forEach((button) => {
      button.addEventListener("click", async () => {
        const ok = await confirmAction({
          title: "Revoke this invite link?",
          lines: ["The link stops working at once: whoever has it can no longer join your team with it."],
          confirm: "Revoke the link",
        });
        if (!ok) return;
        try {
          await api("DELETE", `/api/v1/miner/invites/${encodeURIComponent(button.dataset.revokeInvite)}`);
          const row = button.closest("tr");
          row.dataset.state = "revoked";
          row.querySelector("[data-invite-state]").textContent = "revoked";
          row.querySelector("[data-invite-state]").className = "badge";
          button.remove();
          flash("Invite link revoked.");
        } catch (err) {
          flash(err.message);
        }
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
    initTeam();
    initCopyButtons();
    if (new URLSearchParams(window.location.search).has("added")) flash("Key added. Its miner's tasks now appear under Tasks.");
  });

  return { api, csrfToken, flash, showError, openNextTask, ApiError, copyText, confirmAction };
})();
