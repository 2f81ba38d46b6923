/* The task page: file tabs, score sliders, and the ranking by drag and drop, buttons or
 * the keyboard alone (number keys best first, Enter submits, S skips after asking, ? helps).
 * Submit takes only a whole ranking the worker made: each response is placed by its number,
 * by a move (drag, ▲ ▼), or all at once by "Keep this order"; the last one places itself.
 * The page holds the task while the worker is at work on it, keeps a draft of the answer in
 * this browser and on the platform (for the worker's other browsers), closes the moment the
 * deadline passes (keeping the draft), counts the time spent on it (sent as the result's
 * lead time), and lets the worker report a broken response and say why it ranked so. */
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
  const bar = $("answer-bar");
  const barSummary = $("answer-bar-summary");
  const timeOnTask = $("time-on-task");
  const rationale = $("rationale");
  const draftKey = `dojo-draft:${form.dataset.workerId}:${taskId}`;
  // A touch screen without a keyboard gets no keyboard hints (the stylesheet hides them).
  const touch = window.matchMedia("(hover: none) and (pointer: coarse)").matches;
  const submitHint = () => (touch ? "Submit when you are ready." : "Press Enter to submit.");
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

  /* ---- how to judge: open on a wide screen, a line to open on a narrow one, until the
   * worker opens or closes it (remembered in this browser) ---- */
  const guidelines = $("guidelines");
  if (guidelines) {
    let choice = null;
    try { choice = localStorage.getItem("dojo-guidelines"); } catch (err) { /* none kept */ }
    guidelines.open = choice ? choice === "open" : !window.matchMedia("(max-width: 899.98px)").matches;
    // The worker's own toggles only (a click, or Enter or Space on the summary), not the one above.
    guidelines.querySelector("summary").addEventListener("click", () => setTimeout(() => {
      try { localStorage.setItem("dojo-guidelines", guidelines.open ? "open" : "closed"); } catch (err) { /* not kept */ }
    }));
  }

  /* ---- sliders ---- */
  const sliders = Array.from(document.querySelectorAll('.slider input[type="range"]'));
  const showScore = (input) => { $(input.getAttribute("aria-describedby")).textContent = input.value; };
  sliders.forEach((input) => {
    input.addEventListener("input", () => { showScore(input); saveDraft(); });
    showScore(input);
  });

  /* ---- the rationale: one line ---- */
  const oneLine = (text) => text.replace(/\s+/g, " ");
  if (rationale) {
    rationale.addEventListener("input", () => {
      const flat = oneLine(rationale.value);
      if (flat !== rationale.value) rationale.value = flat; // a pasted line break
      saveDraft();
    });
    rationale.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault(); // one line: Enter submits, as in a one-line field
        submit("rationale");
      }
    });
  }

  /* ---- ranking ----
   * The list shows the ranking as it stands; ``placed`` holds the responses the worker has
   * given a place (by number, by a move, or Keep this order). A number puts its response in
   * the first place no placed response holds; the unplaced ones keep their order in the rest.
   * When one response is left, it places itself (``auto``): pressing its number confirms it. */
  const items = () => Array.from(list ? list.querySelectorAll(".rank-item") : []);
  // Responses in the order the page shows them: number key k means the k-th.
  const byLabel = new Map(items().map((li) => [li.dataset.label, li]));
  const labelOf = new Map(items().map((li) => [li.dataset.cid, li.dataset.label]));
  const n = byLabel.size;
  const initialOrder = items().map((li) => li.dataset.label);
  const placedSet = new Set(form.dataset.answered === "yes" ? initialOrder : []);
  let auto = null; // the response that placed itself, until its number confirms it
  let undo = []; // the state before each step, for Backspace
  const ordinal = (k) => k + (["th", "st", "nd", "rd"][(k % 100 - 20) % 10] || ["th", "st", "nd", "rd"][k % 100] || "th");
  const shownLabels = () => items().map((li) => li.dataset.label);
  const placed = () => placedSet.size;
  const whole = () => n > 0 && placedSet.size === n;
  const place = (label) => shownLabels().indexOf(label) + 1;
  const named = (label) => {
    const summary = byLabel.get(label).dataset.summary;
    return summary ? `${label} (${summary})` : label;
  };

  function say(message) {
    if (status) status.textContent = message;
  }

  function render() {
    items().forEach((li, i) => {
      const label = li.dataset.label;
      const isPlaced = placedSet.has(label);
      li.querySelector(".rank-pos").textContent = String(i + 1);
      li.setAttribute("aria-label", `${ordinal(i + 1)}: response ${named(label)}${isPlaced ? "" : ", not placed yet"}`);
      li.querySelector('[data-move="-1"]').disabled = closed || i === 0;
      li.querySelector('[data-move="1"]').disabled = closed || i === n - 1;
      li.classList.toggle("placed", isPlaced);
      li.classList.toggle("needs-place", false);
      li.draggable = !closed;
      li.setAttribute("aria-disabled", String(closed));
    });
    if (count) count.textContent = `${placed()} of ${n} placed`;
    if (barSummary && list) {
      bar.classList.remove("has-error");
      barSummary.textContent = whole() ? `Ranked: ${shownLabels().join(", ")}`
        : placed() ? `${placed()} of ${n} placed` : "Not ranked yet";
    }
  }

  function show(labels) {
    for (const label of labels) list.appendChild(byLabel.get(label));
  }

  const snapshot = () => ({ order: shownLabels(), placed: Array.from(placedSet), auto });

  function restoreState(state) {
    show(state.order);
    placedSet.clear();
    state.placed.forEach((label) => placedSet.add(label));
    auto = state.auto;
  }

  function changed(message) {
    error.hidden = true;
    render();
    say(message);
    saveDraft();
  }

  function placeLast() {
    if (placedSet.size !== n - 1) return;
    auto = shownLabels().find((l) => !placedSet.has(l));
    placedSet.add(auto);
  }

  function progressMessage(lead) {
    if (whole()) return `${lead}Ranked: ${shownLabels().join(", ")}. ${submitHint()}`;
    const free = shownLabels().findIndex((l) => !placedSet.has(l)) + 1;
    return `${lead}${placed()} of ${n} placed.${touch ? "" : ` Press the number of the ${ordinal(free)}.`}`;
  }

  function typeNumber(label) {
    if (!byLabel.has(label)) return say(`There is no response ${label}.`);
    if (placedSet.has(label)) {
      if (label === auto) { // the last one placed itself: its number confirms it
        auto = null;
        return changed(progressMessage(`Response ${label} is ${ordinal(place(label))}. `));
      }
      return say(`Response ${label} is already ${ordinal(place(label))}.`
        + (touch ? "" : " Backspace takes back a step; Esc starts over."));
    }
    undo.push(snapshot());
    // The first place no placed response holds takes it; the unplaced others fill the rest in their order.
    const order = shownLabels();
    const slot = order.findIndex((l) => !placedSet.has(l));
    const rest = order.filter((l) => !placedSet.has(l) && l !== label);
    show(order.map((l, i) => (placedSet.has(l) ? l : i === slot ? label : rest.shift())));
    placedSet.add(label);
    placeLast();
    changed(progressMessage(`Response ${label} is ${ordinal(slot + 1)}. `));
  }

  function undoStep() {
    const last = undo.pop();
    if (!last) return;
    restoreState(last);
    changed(placed() ? `Took back a step: ${placed()} of ${n} placed.` : "Nothing placed yet.");
  }

  function startOver() {
    undo = [];
    placedSet.clear();
    auto = null;
    show(initialOrder);
    changed(touch ? "Order cleared." : "Order cleared. Press the number of the best response.");
  }

  function keepOrder() {
    if (closed) return;
    undo.push(snapshot());
    initialOrder.forEach((label) => placedSet.add(label));
    auto = null;
    changed(`Ranked: ${shownLabels().join(", ")}. ${submitHint()}`);
  }

  // A move places the moved response where the worker put it, and nothing else.
  function moved(li, before) {
    undo.push(before);
    placedSet.add(li.dataset.label);
    if (auto === li.dataset.label) auto = null;
    placeLast();
    changed(progressMessage(`Response ${li.dataset.label} is now ${ordinal(place(li.dataset.label))}. `));
  }

  function move(li, delta) {
    if (closed) return;
    const all = items();
    const j = all.indexOf(li) + delta;
    if (j < 0 || j >= all.length) return;
    const before = snapshot();
    list.insertBefore(li, delta < 0 ? all[j] : all[j].nextSibling);
    moved(li, before);
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
    $("keep-order").addEventListener("click", keepOrder);

    // Drag and drop (HTML5). Pointer users on touch screens have the arrow buttons.
    let dragged = null;
    const clearMarks = () => items().forEach((li) => li.classList.remove("drop-before", "drop-after"));
    const before = (over, event) => {
      const rect = over.getBoundingClientRect();
      return event.clientY < rect.top + rect.height / 2;
    };
    list.addEventListener("dragstart", (event) => {
      dragged = closed ? null : event.target.closest(".rank-item");
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
        const state = snapshot();
        list.insertBefore(dragged, before(over, event) ? over : over.nextSibling);
        moved(dragged, state);
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
    if (!closed && document.visibilityState === "visible" && now - lastInput < IDLE_MS) {
      spentMs += Math.min(now - lastTick, 2000); // a throttled or sleeping page adds no gap
    }
    lastTick = now;
    const s = Math.floor(spentMs / 1000);
    if (timeOnTask) timeOnTask.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") lastTick = Date.now();
    else { countTime(); pushDraft(); }
  });

  /* ---- the draft: this answer so far, kept in this browser and on the platform ---- */
  // The server's clock minus this browser's: holds count down, drafts are dated and the
  // deadline passes in the server's time.
  const clockOffset = form.dataset.now ? Date.parse(form.dataset.now) - Date.now() : 0;
  const DRAFT_DELAY_MS = 800; // the platform's copy follows a pause in the work
  let draftTimer = null;
  let draftDirty = false;
  // The platform's save of the draft under way: an answer waits for it, or the save could
  // land after the answer and leave a draft of a task already answered.
  let draftSaving = null;
  let drafted = false; // this page holds a draft: one taken up, or work done here

  const scoreValues = () => {
    const scores = {};
    sliders.forEach((input) => { scores[input.dataset.cid] = Number(input.value); });
    return sliders.length ? scores : null;
  };
  const rationaleText = () => (rationale ? oneLine(rationale.value).trim() : "");

  function saveDraft() {
    if (closed) return;
    drafted = true;
    try {
      localStorage.setItem(draftKey, JSON.stringify({
        order: shownLabels(),
        placed: Array.from(placedSet),
        auto,
        scores: sliders.map((input) => input.value),
        rationale: rationale ? rationale.value : "",
        spentMs,
        savedAt: Date.now() + clockOffset,
      }));
    } catch (err) { /* storage full or disabled: the platform's copy still follows */ }
    draftDirty = true;
    clearTimeout(draftTimer);
    draftTimer = setTimeout(pushDraft, DRAFT_DELAY_MS);
  }

  const cidOf = (label) => byLabel.get(label).dataset.cid;

  async function pushDraft(keepalive) {
    clearTimeout(draftTimer);
    if (!draftDirty || closed || form.dataset.state || !list) return;
    draftDirty = false;
    const body = {
      order: shownLabels().map(cidOf),
      placed: Array.from(placedSet).map(cidOf),
      scores: scoreValues(),
      rationale: rationaleText() || null,
      leadTime: Math.round(spentMs) / 1000,
    };
    const saving = Dojo.api("PUT", `${taskUrl}/draft`, body, { keepalive: Boolean(keepalive) });
    draftSaving = saving.catch(() => null);
    try {
      await saving;
    } catch (err) {
      if (err.status === 410) expire();
      // Otherwise this browser's copy stands; the next change tries again.
    }
  }

  function readDraft() {
    try { return JSON.parse(localStorage.getItem(draftKey) || "null"); } catch (err) { return null; }
  }

  // The platform's draft (another browser's), in this page's terms.
  function platformDraft() {
    let data = null;
    try { data = JSON.parse(form.dataset.draft || "null"); } catch (err) { return null; }
    if (!data || !Array.isArray(data.order)) return null;
    const labels = (cids) => (cids || []).map((cid) => labelOf.get(cid));
    return {
      order: labels(data.order),
      placed: labels(data.placed),
      auto: null,
      scores: data.scores ? sliders.map((input) => data.scores[input.dataset.cid]) : null,
      rationale: data.rationale || "",
      spentMs: (Number(data.leadTime) || 0) * 1000,
      savedAt: Date.parse(data.savedAt) || 0,
    };
  }

  function restoreDraft() {
    const mine = readDraft();
    const theirs = platformDraft();
    const draft = !theirs || (mine && (Number(mine.savedAt) || 0) >= theirs.savedAt) ? mine : theirs;
    if (!draft) return;
    drafted = true;
    const known = (a) => Array.isArray(a) && a.every((l) => byLabel.has(l)) && new Set(a).size === a.length;
    if (list && known(draft.order) && draft.order.length === n) {
      show(draft.order);
      // Drafts from before "placed" was kept: the numbers typed, or the whole order.
      const given = Array.isArray(draft.placed) ? draft.placed : draft.whole ? draft.order : draft.typed;
      placedSet.clear();
      if (known(given)) given.forEach((l) => placedSet.add(l));
      auto = placedSet.has(draft.auto) ? draft.auto : null;
    }
    if (Array.isArray(draft.scores) && draft.scores.length === sliders.length) {
      sliders.forEach((input, i) => {
        if (draft.scores[i] !== undefined && draft.scores[i] !== null) input.value = draft.scores[i];
        showScore(input);
      });
    }
    if (rationale && typeof draft.rationale === "string" && draft.rationale) rationale.value = oneLine(draft.rationale);
    spentMs = Number(draft.spentMs) || 0;
    say(`Your draft is back${draft === theirs ? " (saved from your other browser)" : ""}: ${placed()} of ${n} placed.`);
  }

  const forgetDraft = () => { try { localStorage.removeItem(draftKey); } catch (err) { /* nothing kept */ } };

  /* ---- closed tasks: nothing can change; what was done so far stays as a draft ---- */
  function close(reason) {
    pushDraft();
    closed = true;
    $("task-closed-reason").textContent = reason;
    $("task-closed").hidden = false;
    $("task-closed-draft").hidden = !drafted;
    holdLost.hidden = true;
    holdStatus.textContent = "";
    for (const id of ["submit-task", "skip-task", "answer-bar-submit", "keep-order"]) {
      if ($(id)) $(id).disabled = true;
    }
    sliders.forEach((input) => { input.disabled = true; });
    if (rationale) rationale.readOnly = true;
    hideSkip();
    render();
    say("");
  }

  // The deadline, in this browser's time.
  const expireAt = form.dataset.expireAt ? Date.parse(form.dataset.expireAt) - clockOffset : null;
  function expire() {
    if (closed) return;
    const at = new Date(expireAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    close(`its deadline passed at ${at}; it takes no more answers`);
  }

  /* ---- the hold: claimed on load, extended while the worker is at work ---- */
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
    if (!held || closed) return;
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

  // A refusal is said where the worker is looking: beside Submit in the answer panel, and
  // in the answer bar at the bottom of a narrow screen.
  function refuse(message) {
    Dojo.showError(error, message);
    if (bar && barSummary && getComputedStyle(bar).display !== "none") {
      bar.classList.add("has-error");
      barSummary.textContent = message;
    } else {
      error.scrollIntoView({ block: "nearest" });
    }
  }

  async function submit() {
    if (busy) return;
    error.hidden = true;
    if (closed) {
      refuse(`You cannot answer this task now: ${$("task-closed-reason").textContent}.`);
      return;
    }
    if (list && !whole()) {
      items().forEach((li) => li.classList.toggle("needs-place", !placedSet.has(li.dataset.label)));
      const how = touch ? "move them with ▲ ▼" : "press their numbers best first, drag them";
      refuse(`Rank every response first (${placed()} of ${n} placed): ${how}, or choose Keep this order. Nothing was sent.`);
      return;
    }
    busy = true;
    countTime();
    clearTimeout(draftTimer);
    try {
      const body = { resultData: resultData(), leadTime: Math.round(spentMs) / 1000 };
      if (rationaleText()) body.rationale = rationaleText();
      await draftSaving; // the answer as checked above, sent after the draft's save
      await Dojo.api("POST", `${taskUrl}/result`, body);
      forgetDraft();
      form.dataset.state = "submitted";
      say("Answer saved.");
      const done = $("done-today");
      if (done) done.textContent = String(Number(done.textContent) + 1);
      await afterAnswer();
    } catch (err) {
      if (err.status === 410) expire();
      refuse(err.message);
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
    clearTimeout(draftTimer);
    try {
      await draftSaving;
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
    const ranking = /^[0-9]$/.test(key) || key === "Backspace" || key === "Escape";
    if (ranking && list && closed) {
      if (key !== "Escape") say("This task is closed: the ranking stays as it is.");
      return key !== "Escape";
    }
    if (/^[0-9]$/.test(key) && list) typeNumber(key === "0" ? "10" : key);
    else if (key === "Backspace" && list && undo.length) undoStep();
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
  else if (expireAt !== null && Date.now() >= expireAt) expire();
  else hold(true);
  setInterval(() => {
    countTime();
    // The deadline first: at that moment the hold (which never outlasts it) ends too.
    if (!closed && expireAt !== null && Date.now() >= expireAt) expire();
    keepHold();
  }, 1000);
  // Leaving the page keeps the time spent in a draft there is (a reload carries on counting).
  window.addEventListener("pagehide", () => {
    if (!form.dataset.state && readDraft()) {
      countTime();
      saveDraft();
      pushDraft(true);
    }
  });
})();
