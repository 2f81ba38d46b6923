/* The task page: file tabs, score sliders, and the ranking by drag and drop, buttons or
 * the keyboard alone (number keys best first, Enter submits, S skips after asking, ? helps).
 * Submit takes only a whole ranking the worker made. The page holds the task while the
 * worker is at work on it, keeps a draft of the answer in this browser, counts the time
 * spent on it (sent as the result's lead time), and lets the worker report a broken response. */
"use strict";

(() => {
  const form = document.getElementById("task-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  const taskId = form.dataset.taskId;
  const taskUrl = `/api/v1/worker/tasks/${encodeURIComponent(taskId)}`;
  const error = $("task-error");
  const list = $("ranking");
  const status = $("ranking-status");
  const count = $("ranking-count");
  const answer = $("answer");
  const shortcuts = $("shortcuts");
  const skipConfirm = $("skip-confirm");
  const holdStatus = $("hold-status");
  const holdLost = $("hold-lost");
  const barSummary = $("answer-bar-summary");
  const timeOnTask = $("time-on-task");
  const draftKey = `dojo-draft:${form.dataset.workerId}:${taskId}`;
  let busy = false;
  let closed = form.dataset.closed === "yes";

  /* ---- tabs (WAI-ARIA tabs pattern: arrows move between tabs) ---- */
  document.querySelectorAll("[data-tabs]").forEach((tabs) => {
    const buttons = Array.from(tabs.querySelectorAll('[role="tab"]'));
    function select(tab) {
      for (const b of buttons) {
        const on = b === tab;
        b.setAttribute("aria-selected", String(on));
        b.tabIndex = on ? 0 : -1;
        $(b.getAttribute("aria-controls")).hidden = !on;
      }
    }
    buttons.forEach((b, i) => {
      b.addEventListener("click", () => select(b));
      b.addEventListener("keydown", (event) => {
        let j = null;
        if (event.key === "ArrowRight") j = (i + 1) % buttons.length;
        else if (event.key === "ArrowLeft") j = (i - 1 + buttons.length) % buttons.length;
        else if (event.key === "Home") j = 0;
        else if (event.key === "End") j = buttons.length - 1;
        if (j === null) return;
        event.preventDefault();
        event.stopPropagation();
        select(buttons[j]);
        buttons[j].focus();
      });
    });
    const selected = buttons.find((b) => b.getAttribute("aria-selected") === "true") || buttons[0];
    if (selected) select(selected);
  });

  /* ---- the prompt: a long one collapses on small screens ---- */
  const prompt = $("prompt-text");
  const promptMore = $("prompt-more");
  if (prompt && promptMore) {
    promptMore.hidden = prompt.scrollHeight <= prompt.clientHeight + 1;
    promptMore.addEventListener("click", () => {
      const open = prompt.classList.toggle("expanded");
      promptMore.setAttribute("aria-expanded", String(open));
      promptMore.textContent = open ? "Show less of the prompt" : "Show the whole prompt";
    });
  }

  /* ---- sliders ---- */
  const sliders = Array.from(document.querySelectorAll('.slider input[type="range"]'));
  const showScore = (input) => { $(input.getAttribute("aria-describedby")).textContent = input.value; };
  sliders.forEach((input) => {
    input.addEventListener("input", () => { showScore(input); saveDraft(); });
    showScore(input);
  });

  /* ---- ranking ---- */
  const items = () => Array.from(list ? list.querySelectorAll(".rank-item") : []);
  // Responses in the order the page shows them: number key k means the k-th.
  const byLabel = new Map(items().map((li) => [li.dataset.label, li]));
  const n = byLabel.size;
  const initialOrder = items().map((li) => li.dataset.label);
  let typed = []; // labels placed by number keys, best first
  // The whole list as shown is the worker's ranking: a move, "Keep this order", or an earlier answer.
  let whole = form.dataset.answered === "yes";
  let undo = []; // what each number key changed, for Backspace
  const ordinal = (k) => k + (["th", "st", "nd", "rd"][(k % 100 - 20) % 10] || ["th", "st", "nd", "rd"][k % 100] || "th");
  const shownLabels = () => items().map((li) => li.dataset.label);
  const placed = () => (whole ? n : typed.length);

  function say(message) {
    if (status) status.textContent = message;
  }

  function render() {
    items().forEach((li, i) => {
      li.querySelector(".rank-pos").textContent = String(i + 1);
      li.setAttribute("aria-label", `${ordinal(i + 1)}: response ${li.dataset.label}`);
      li.querySelector('[data-move="-1"]').disabled = i === 0;
      li.querySelector('[data-move="1"]').disabled = i === n - 1;
      li.classList.toggle("placed", whole || typed.includes(li.dataset.label));
    });
    if (count) count.textContent = `${placed()} of ${n} placed`;
    if (barSummary && list) {
      barSummary.textContent = placed() === n ? `Ranked: ${shownLabels().join(", ")}`
        : placed() ? `${placed()} of ${n} placed` : "Not ranked yet";
    }
  }

  function show(labels) {
    for (const label of labels) list.appendChild(byLabel.get(label));
  }

  function changed(message) {
    render();
    say(message);
    saveDraft();
  }

  function typeNumber(label) {
    if (!byLabel.has(label)) return say(`There is no response ${label}.`);
    if (placed() === n) { typed = []; whole = false; } // a complete order: start a new one
    if (typed.includes(label)) return say(`Response ${label} is already ${ordinal(typed.indexOf(label) + 1)}.`);
    undo.push({ order: shownLabels(), typed: typed.slice() });
    typed.push(label);
    if (typed.length === n - 1) typed.push(shownLabels().find((l) => !typed.includes(l))); // the last places itself
    show([...typed, ...shownLabels().filter((l) => !typed.includes(l))]);
    changed(typed.length === n ? `Ranked: ${typed.join(", ")}. Press Enter to submit.`
      : `Response ${label} is ${ordinal(typed.length)}. Press the number of the ${ordinal(typed.length + 1)}.`);
  }

  function undoNumber() {
    const last = undo.pop();
    if (!last) return;
    typed = last.typed;
    whole = false;
    show(last.order);
    changed(typed.length ? `Placed so far: ${typed.join(", ")}.` : "Nothing placed yet.");
  }

  function startOver() {
    typed = [];
    undo = [];
    whole = false;
    show(initialOrder);
    changed("Order cleared. Press the number of the best response.");
  }

  function madeWhole(message) {
    typed = [];
    undo = [];
    whole = true;
    changed(message);
  }

  function move(li, delta) {
    const all = items();
    const j = all.indexOf(li) + delta;
    if (j < 0 || j >= all.length) return;
    list.insertBefore(li, delta < 0 ? all[j] : all[j].nextSibling);
    madeWhole(`Response ${li.dataset.label} is now ${ordinal(j + 1)}.`);
  }

  if (list) {
    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-move]");
      if (!button) return;
      const li = button.closest(".rank-item");
      move(li, Number(button.dataset.move));
      const again = li.querySelector(`[data-move="${button.dataset.move}"]`);
      (again.disabled ? li : again).focus();
    });
    list.addEventListener("keydown", (event) => {
      const li = event.target.closest(".rank-item");
      if (!li || event.target !== li) return;
      if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
      event.preventDefault();
      const delta = event.key === "ArrowUp" ? -1 : 1;
      if (event.altKey || event.shiftKey) {
        move(li, delta);
        li.focus();
      } else {
        const all = items();
        const next = all[all.indexOf(li) + delta];
        if (next) next.focus();
      }
    });
    $("keep-order").addEventListener("click", () => madeWhole(`Ranked: ${shownLabels().join(", ")}. Press Enter to submit.`));

    // Drag and drop (HTML5). Pointer users on touch screens have the arrow buttons.
    let dragged = null;
    const clearMarks = () => items().forEach((li) => li.classList.remove("drop-before", "drop-after"));
    const before = (over, event) => {
      const rect = over.getBoundingClientRect();
      return event.clientY < rect.top + rect.height / 2;
    };
    list.addEventListener("dragstart", (event) => {
      dragged = event.target.closest(".rank-item");
      if (!dragged) return;
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.cid);
    });
    list.addEventListener("dragover", (event) => {
      if (!dragged) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      const over = event.target.closest(".rank-item");
      clearMarks();
      if (over && over !== dragged) over.classList.add(before(over, event) ? "drop-before" : "drop-after");
    });
    list.addEventListener("dragleave", (event) => {
      if (!list.contains(event.relatedTarget)) clearMarks();
    });
    list.addEventListener("drop", (event) => {
      if (!dragged) return;
      event.preventDefault();
      const over = event.target.closest(".rank-item");
      if (over && over !== dragged) {
        list.insertBefore(dragged, before(over, event) ? over : over.nextSibling);
        madeWhole(`Response ${dragged.dataset.label} is now ${ordinal(items().indexOf(dragged) + 1)}.`);
      }
      clearMarks();
    });
    list.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
      clearMarks();
    });
  }

  /* ---- time on the task: counted while the page is in view and the worker is at it ---- */
  const IDLE_MS = 5 * 60 * 1000; // no input for this long: away from the task
  let spentMs = 0;
  let lastTick = Date.now();
  let lastInput = Date.now();
  function countTime() {
    const now = Date.now();
    if (document.visibilityState === "visible" && now - lastInput < IDLE_MS) {
      spentMs += Math.min(now - lastTick, 2000); // a throttled or sleeping page adds no gap
    }
    lastTick = now;
    const s = Math.floor(spentMs / 1000);
    if (timeOnTask) timeOnTask.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") lastTick = Date.now();
    else countTime();
  });

  /* ---- the draft: this answer so far, kept in this browser until it is submitted ---- */
  function saveDraft() {
    try {
      localStorage.setItem(draftKey, JSON.stringify({
        order: shownLabels(),
        typed,
        whole,
        scores: sliders.map((input) => input.value),
        spentMs,
      }));
    } catch (err) { /* storage full or disabled: the page still works */ }
  }

  function readDraft() {
    try { return JSON.parse(localStorage.getItem(draftKey) || "null"); } catch (err) { return null; }
  }

  function restoreDraft() {
    const draft = readDraft();
    if (!draft) return;
    const same = (a) => Array.isArray(a) && a.length === n && a.every((l) => byLabel.has(l)) && new Set(a).size === n;
    if (list && same(draft.order)) {
      show(draft.order);
      typed = (draft.typed || []).filter((l) => byLabel.has(l));
      whole = Boolean(draft.whole);
    }
    if (Array.isArray(draft.scores) && draft.scores.length === sliders.length) {
      sliders.forEach((input, i) => { input.value = draft.scores[i]; showScore(input); });
    }
    spentMs = Number(draft.spentMs) || 0;
    say(`Your draft is back: ${placed()} of ${n} placed.`);
  }

  const forgetDraft = () => { try { localStorage.removeItem(draftKey); } catch (err) { /* nothing kept */ } };

  /* ---- closed tasks ---- */
  function close(reason) {
    closed = true;
    $("task-closed-reason").textContent = reason;
    $("task-closed").hidden = false;
    holdLost.hidden = true;
    holdStatus.textContent = "";
    for (const id of ["submit-task", "skip-task", "answer-bar-submit"]) $(id).disabled = true;
    hideSkip();
  }

  /* ---- the hold: claimed on load, extended while the worker is at work ---- */
  // The server's clock minus this browser's, so that the countdown runs in the server's time.
  const clockOffset = form.dataset.now ? Date.parse(form.dataset.now) - Date.now() : 0;
  const RETRY_MS = 15 * 1000;
  let heldUntil = null; // this browser's time
  let holdMs = null; // how long one hold lasts
  let holdAsked = 0;
  let holding = false;
  let held = false; // a live hold, as far as this page knows
  let kept = false; // the worker has a stored result: its place is kept, no hold needed

  function lose(reason) {
    held = false;
    holdLost.hidden = false;
    holdStatus.textContent = reason ? `Not held: ${reason}.` : "Not held for you now.";
  }

  async function hold(first) {
    if (holding || closed || kept) return;
    holding = true;
    holdAsked = Date.now();
    try {
      const data = await Dojo.api("POST", `${taskUrl}/hold`);
      if (!data.heldUntil) {
        kept = true;
        holdStatus.textContent = "You answered this task; your place is kept.";
      } else {
        heldUntil = Date.parse(data.heldUntil) - clockOffset;
        if (holdMs === null) holdMs = heldUntil - Date.now();
        held = true;
        holdLost.hidden = true;
        showHold();
      }
    } catch (err) {
      if (err.status === 410 || (first && (err.status === 409 || err.status === 404))) close(err.message);
      else if (err.status === 409) lose(err.message);
      else holdStatus.textContent = `Could not reach the platform to hold the task: ${err.message}`;
    } finally {
      holding = false;
    }
  }

  function showHold() {
    if (!held) return;
    const left = Math.max(0, Math.round((heldUntil - Date.now()) / 1000));
    holdStatus.textContent = `Held for you: ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left.`;
  }

  function keepHold() {
    if (closed || kept || holding) return;
    const now = Date.now();
    const active = document.visibilityState === "visible" && lastInput > holdAsked;
    if (held) {
      if (now >= heldUntil) return lose("the time ran out");
      if (active && heldUntil - now < holdMs / 2) hold(false);
      showHold();
    } else if (active && now - holdAsked > RETRY_MS) {
      hold(false); // lost: ask again while the worker carries on
    }
  }

  /* ---- the answer ---- */
  function resultData() {
    const data = [];
    if (list) {
      const value = {};
      items().forEach((li, i) => { value[li.dataset.cid] = i + 1; });
      data.push({ type: "ranking", value });
    }
    document.querySelectorAll(".scores-field").forEach((fieldset) => {
      const value = {};
      fieldset.querySelectorAll('input[type="range"]').forEach((input) => { value[input.dataset.cid] = Number(input.value); });
      data.push({ type: "multi-score", value });
    });
    return data;
  }

  async function afterAnswer() {
    try {
      await Dojo.openNextTask();
    } catch (err) {
      window.location.assign("/tasks?submitted=1");
    }
  }

  async function submit() {
    if (busy) return;
    error.hidden = true;
    if (closed) {
      Dojo.showError(error, `You cannot answer this task now: ${$("task-closed-reason").textContent}.`);
      return;
    }
    if (list && placed() < n) {
      Dojo.showError(error, `Rank every response first (${placed()} of ${n} placed): press their numbers best first, `
        + "drag them, or choose Keep this order. Nothing was sent.");
      return;
    }
    busy = true;
    countTime();
    try {
      await Dojo.api("POST", `${taskUrl}/result`, { resultData: resultData(), leadTime: Math.round(spentMs) / 1000 });
      forgetDraft();
      form.dataset.state = "submitted";
      say("Answer saved.");
      const done = $("done-today");
      if (done) done.textContent = String(Number(done.textContent) + 1);
      await afterAnswer();
    } catch (err) {
      Dojo.showError(error, err);
      busy = false;
    }
  }

  function askSkip() {
    if (closed || busy || $("skip-task").disabled) return;
    skipConfirm.hidden = false;
    $("skip-yes").focus();
  }

  function hideSkip() {
    const wasOpen = !skipConfirm.hidden;
    skipConfirm.hidden = true;
    if (wasOpen && skipConfirm.contains(document.activeElement)) $("skip-task").focus();
  }

  async function skip() {
    if (busy || closed) return;
    busy = true;
    error.hidden = true;
    try {
      await Dojo.api("POST", `${taskUrl}/skip`);
      forgetDraft();
      form.dataset.state = "skipped";
      await afterAnswer();
    } catch (err) {
      Dojo.showError(error, err);
      busy = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  $("skip-task").addEventListener("click", askSkip);
  $("skip-yes").addEventListener("click", skip);
  $("skip-no").addEventListener("click", hideSkip);

  /* ---- reports of a broken response ---- */
  document.querySelectorAll("[data-flag-open]").forEach((opener) => {
    const label = opener.dataset.flagOpen;
    const flagForm = $(`flag-${label}`);
    const input = flagForm.querySelector("input");
    const flagError = flagForm.querySelector(".error");
    // Closed by Cancel or Esc, the keyboard goes back to the button; after a report is sent,
    // to the answer, so that the numbers and Enter rank and submit at once.
    const toggle = (open, next = opener) => {
      flagForm.hidden = !open;
      opener.setAttribute("aria-expanded", String(open));
      (open ? input : next).focus({ preventScroll: !open && next !== opener });
    };
    opener.addEventListener("click", () => toggle(flagForm.hidden));
    flagForm.querySelector("[data-flag-cancel]").addEventListener("click", () => toggle(false));
    flagForm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); toggle(false); }
    });
    flagForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      flagError.hidden = true;
      const reason = input.value.trim();
      if (!reason) return Dojo.showError(flagError, "Say what is broken.");
      try {
        await Dojo.api("POST", `${taskUrl}/flags`, { cid: flagForm.dataset.cid, reason });
        const shown = $(`flagged-${label}`);
        shown.querySelector("[data-flag-reason]").textContent = reason;
        shown.hidden = false;
        opener.firstChild.textContent = "Change your report";
        opener.querySelector(".sr-only").textContent = ` on response ${label}`;
        toggle(false, answer);
      } catch (err) {
        Dojo.showError(flagError, err);
      }
    });
  });

  /* ---- keyboard alone ---- */
  function shortcut(key, onControl) {
    if (!skipConfirm.hidden) {
      if (key === "s" || key === "S" || (key === "Enter" && !onControl)) skip();
      else if (key === "Escape") hideSkip();
      else return false;
      return true;
    }
    if (/^[0-9]$/.test(key) && list) typeNumber(key === "0" ? "10" : key);
    else if (key === "Backspace" && list && undo.length) undoNumber();
    else if (key === "Escape" && list && (placed() || shownLabels().join() !== initialOrder.join())) startOver();
    else if (key === "Enter" && !onControl) submit();
    else if (key === "s" || key === "S") askSkip();
    else if (key === "?") openShortcuts();
    else return false;
    return true;
  }

  function openShortcuts() {
    if (!shortcuts.open) shortcuts.showModal();
  }
  $("open-shortcuts").addEventListener("click", openShortcuts);

  document.addEventListener("keydown", (event) => {
    lastInput = Date.now();
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || shortcuts.open) return;
    const t = event.target;
    if (t.closest && t.closest('input:not([type="range"]), textarea, select, [contenteditable], .flag-form')) return;
    if (shortcut(event.key, Boolean(t.closest && t.closest('button, a[href], [role="tab"], summary')))) {
      event.preventDefault();
    }
  });

  // Keys pressed in a live preview, which the preview's own script hands up (see _render.py):
  // accepted from this page's preview frames only, while the worker is in that frame, and
  // only the keys below. The first one brings the keyboard back to the page.
  const FORWARDED = new Set(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "Backspace", "Escape", "s", "S", "?"]);
  const previews = Array.from(document.querySelectorAll("iframe.preview"));
  window.addEventListener("message", (event) => {
    const frame = previews.find((f) => f.contentWindow === event.source);
    const key = event.data && event.data.dojoKey;
    if (!frame || document.activeElement !== frame || !FORWARDED.has(key) || shortcuts.open) return;
    lastInput = Date.now();
    answer.focus({ preventScroll: true });
    shortcut(key, false);
  });

  for (const type of ["pointerdown", "input", "scroll", "wheel", "touchstart"]) {
    document.addEventListener(type, () => { lastInput = Date.now(); }, { passive: true, capture: true });
  }

  /* ---- start ---- */
  restoreDraft();
  render();
  if (closed) close($("task-closed-reason").textContent);
  else hold(true);
  setInterval(() => { countTime(); keepHold(); }, 1000);
  // Leaving the page keeps the time spent in a draft there is (a reload carries on counting).
  window.addEventListener("pagehide", () => {
    if (!form.dataset.state && readDraft()) { countTime(); saveDraft(); }
  });
})();
