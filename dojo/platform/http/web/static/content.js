/* The task page's image responses: a click, Enter or Space on an image opens it enlarged in a
 * dialog; ← and → show the previous and next response's image, Esc or Close returns to the
 * image it was opened from. Keys pressed in the dialog stay in it (they do not rank). */
"use strict";

(() => {
  const openers = Array.from(document.querySelectorAll("[data-zoom-src]"));
  if (!openers.length) return;
  const dialog = document.createElement("dialog");
  dialog.className = "image-viewer";
  dialog.setAttribute("aria-labelledby", "image-viewer-title");
  dialog.innerHTML = '<div class="image-viewer-bar"><h2 id="image-viewer-title"></h2>'
    + '<span><button type="button" class="btn btn-small" data-step="-1" aria-label="Previous image">←</button> '
    + '<button type="button" class="btn btn-small" data-step="1" aria-label="Next image">→</button> '
    + '<button type="button" class="btn btn-small" data-close>Close <kbd aria-hidden="true">Esc</kbd></button></span></div>'
    + '<img alt="">';
  document.body.appendChild(dialog);
  const title = dialog.querySelector("h2");
  const picture = dialog.querySelector("img");
  let current = 0;

  function show(index) {
    current = (index + openers.length) % openers.length;
    const opener = openers[current];
    const thumb = opener.querySelector("img");
    title.textContent = `${opener.dataset.zoomLabel} (${current + 1} of ${openers.length})`;
    picture.src = opener.dataset.zoomSrc;
    picture.alt = thumb ? thumb.alt : "";
  }

  function close() {
    if (dialog.open) dialog.close();
  }

  openers.forEach((opener, index) => {
    opener.addEventListener("click", () => {
      show(index);
      if (!dialog.open) dialog.showModal();
      dialog.querySelector("[data-close]").focus();
    });
  });
  // After the browser's own focus restoring (to the image the viewer was opened from), the
  // keyboard goes to the image last shown.
  dialog.addEventListener("close", () => setTimeout(() => openers[current].focus(), 0));
  dialog.querySelector("[data-close]").addEventListener("click", close);
  dialog.querySelectorAll("[data-step]").forEach((b) => {
    b.addEventListener("click", () => show(current + Number(b.dataset.step)));
  });
  // A click on the backdrop (outside the dialog's box) closes it.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) close();
  });
  dialog.addEventListener("keydown", (event) => {
    event.stopPropagation();
    if (event.key === "ArrowRight") show(current + 1);
    else if (event.key === "ArrowLeft") show(current - 1);
    else if (event.key === "Escape") close();
    else return;
    event.preventDefault();
  });
})();
