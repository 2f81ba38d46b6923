/* The task page: file tabs, ranking by drag and drop, buttons or keyboard alone
 * (number keys order, Enter submits, S skips), score sliders, submit and skip. */
"use strict";

(() => {
  const form = document.getElementById("task-form");
  if (!form) return;
  const taskId = form.dataset.taskId;
  const error = document.getElementById("task-error");
  const list = document.getElementById("ranking");
  const status = document.getElementById("ranking-status");
  let busy = false;

  /* ---- tabs (WAI-ARIA tabs pattern: arrows move between tabs) ---- */
  document.querySelectorAll("[data-tabs]").forEach((tabs) => {
    const buttons = Array.from(tabs.querySelectorAll('[role="tab"]'));
    function select(tab) {
      for (const b of buttons) {
        const on = b === tab;
        b.setAttribute("aria-selected", String(on));
        b.tabIndex = on ? 0 : -1;
        document.getElementById(b.getAttribute("aria-controls")).hidden = !on;
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

  /* ---- sliders ---- */
  document.querySelectorAll('.slider input[type="range"]').forEach((input) => {
    const out = document.getElementById(input.getAttribute("aria-describedby"));
    const show = () => { out.textContent = input.value; };
    input.addEventListener("input", show);
    show();
  });

  /* ---- ranking ---- */
  const items = () => Array.from(list ? list.querySelectorAll(".rank-item") : []);
  // Responses in the order the page shows them: number key k means the k-th.
  const byLabel = new Map(items().map((li) => [li.dataset.label, li]));
  let typed = []; // labels placed by keyboard, best first
  // The worker has ordered the list at least once (an earlier answer counts).
  let touched = form.dataset.answered === "yes";
  const ordinal = (n) => n + (["th", "st", "nd", "rd"][(n % 100 - 20) % 10] || ["th", "st", "nd", "rd"][n % 100] || "th");

  function renumber() {
    items().forEach((li, i) => {
      li.querySelector(".rank-pos").textContent = String(i + 1);
      li.setAttribute("aria-label", `${ordinal(i + 1)}: response ${li.dataset.label}`);
      li.querySelector('[data-move="-1"]').disabled = i === 0;
      li.querySelector('[data-move="1"]').disabled = i === items().length - 1;
    });
  }

  function say(message) {
    if (status) status.textContent = message;
  }

  function currentOrder() {
    return items().map((li) => li.dataset.cid);
  }

  function applyTyped() {
    const rest = items().filter((li) => !typed.includes(li.dataset.label));
    for (const label of typed) list.appendChild(byLabel.get(label));
    for (const li of rest) list.appendChild(li);
    items().forEach((li) => li.classList.toggle("placed", typed.includes(li.dataset.label)));
    renumber();
  }

  function typeNumber(label) {
    if (!byLabel.has(label)) return say(`There is no response ${label}.`);
    if (typed.length === byLabel.size) typed = []; // a complete order: start a new one
    if (typed.includes(label)) return say(`Response ${label} is already ${ordinal(typed.indexOf(label) + 1)}.`);
    typed.push(label);
    if (typed.length === byLabel.size - 1) {
      // the last one left takes the last place
      typed.push(items().map((li) => li.dataset.label).find((l) => !typed.includes(l)));
    }
    touched = true;
    applyTyped();
    if (typed.length === byLabel.size) {
      say(`Ranked: ${typed.join(", ")}. Press Enter to submit.`);
    } else {
      say(`Response ${label} is ${ordinal(typed.length)}. Press the number of the ${ordinal(typed.length + 1)}.`);
    }
  }

  function move(li, delta) {
    const all = items();
    const i = all.indexOf(li);
    const j = i + delta;
    if (j < 0 || j >= all.length) return;
    if (delta < 0) list.insertBefore(li, all[j]);
    else list.insertBefore(li, all[j].nextSibling);
    typed = [];
    touched = true;
    items().forEach((x) => x.classList.remove("placed"));
    renumber();
    say(`Response ${li.dataset.label} is now ${ordinal(j + 1)}.`);
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

    // Drag and drop (HTML5). Pointer users on touch screens have the arrow buttons.
    let dragged = null;
    list.addEventListener("dragstart", (event) => {
      dragged = event.target.closest(".rank-item");
      if (!dragged) return;
      dragged.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", dragged.dataset.cid);
    });
    const clearMarks = () => items().forEach((li) => li.classList.remove("drop-before", "drop-after"));
    list.addEventListener("dragover", (event) => {
      if (!dragged) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      const over = event.target.closest(".rank-item");
      clearMarks();
      if (!over || over === dragged) return;
      const rect = over.getBoundingClientRect();
      over.classList.add(event.clientY < rect.top + rect.height / 2 ? "drop-before" : "drop-after");
    });
    list.addEventListener("dragleave", (event) => {
      if (!list.contains(event.relatedTarget)) clearMarks();
    });
    list.addEventListener("drop", (event) => {
      if (!dragged) return;
      event.preventDefault();
      const over = event.target.closest(".rank-item");
      if (over && over !== dragged) {
        const rect = over.getBoundingClientRect();
        list.insertBefore(dragged, event.clientY < rect.top + rect.height / 2 ? over : over.nextSibling);
        typed = [];
        touched = true;
        items().forEach((x) => x.classList.remove("placed"));
        renumber();
        say(`Response ${dragged.dataset.label} is now ${ordinal(items().indexOf(dragged) + 1)}.`);
      }
      clearMarks();
    });
    list.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
      clearMarks();
    });
    renumber();
  }

  /* ---- the answer ---- */
  function resultData() {
    const data = [];
    if (list) {
      const value = {};
      currentOrder().forEach((cid, i) => { value[cid] = i + 1; });
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
    if (list && !touched) {
      Dojo.showError(error, "Rank the responses first: drag them, or press their numbers best first (e.g. 2 then 1).");
      return;
    }
    busy = true;
    try {
      await Dojo.api("POST", `/api/v1/worker/tasks/${encodeURIComponent(taskId)}/result`, { resultData: resultData() });
      form.dataset.state = "submitted";
      say("Answer saved.");
      const done = document.getElementById("done-today");
      if (done) done.textContent = String(Number(done.textContent) + 1);
      await afterAnswer();
    } catch (err) {
      Dojo.showError(error, err);
      busy = false;
    }
  }

  async function skip() {
    if (busy) return;
    busy = true;
    error.hidden = true;
    try {
      await Dojo.api("POST", `/api/v1/worker/tasks/${encodeURIComponent(taskId)}/skip`);
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
  document.getElementById("skip-task").addEventListener("click", skip);

  /* ---- keyboard alone ---- */
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    const t = event.target;
    const typing = t.closest && t.closest('input:not([type="range"]), textarea, select, [contenteditable]');
    if (typing) return;
    const onControl = t.closest && t.closest('button, a[href], [role="tab"], summary');
    if (/^[0-9]$/.test(event.key) && list) {
      event.preventDefault();
      typeNumber(event.key === "0" ? "10" : event.key);
    } else if (event.key === "Backspace" && list && typed.length) {
      event.preventDefault();
      typed.pop();
      if (typed.length === byLabel.size - 1) typed.pop();
      applyTyped();
      say(typed.length ? `Placed so far: ${typed.join(", ")}.` : "Order cleared.");
    } else if (event.key === "Escape" && list && typed.length) {
      typed = [];
      applyTyped();
      say("Order cleared. Press the number of the best response.");
    } else if (event.key === "Enter" && !onControl) {
      event.preventDefault();
      submit();
    } else if (event.key === "s" || event.key === "S") {
      event.preventDefault();
      skip();
    }
  });
})();
