"""The page's layout modes and its behaviour in the browser: CSS and the JavaScript Gradio runs on load.

* **Presenter mode** (``?presenter=1`` or the checkbox; class ``presenter`` on the body): large fonts,
  and on a 1280×720 projector three columns without scrolling: the few settings a lecture needs, the
  overlay under its segment count (and what runs: the backbone, the colour fallback's short notice) with
  the click mode and the corrections' Undo and Reset, and the walkthrough's current figure.
* **Phone** (≤ 640 px wide): a short header, the upload and its button on the first screen; a tap on
  an example or on *Segment* takes the visitor to the result (:data:`SCROLL_JS`); the settings keep their
  help in small print; the sweep strip scrolls sideways at a readable size; the Live tab shows the camera,
  then its result, then the settings.
* **Typed values** (:data:`LOAD_JS`): a number typed into a slider's box is clamped to the slider's
  range, and committed (the box's blur, which is the slider's ``release``, which reruns) after Enter
  and :data:`COMMIT_MS` without another edit, so only the last of quick edits runs.
* **Keyboard shortcuts** (outside text fields): ← → the walkthrough's replay or steps, PageUp /
  PageDown (a presenter's clicker) and P / N its steps, 1-9 the number of clusters k, F full screen
  for the overlay (Esc leaves it).

Imports no Gradio: strings the app passes to Gradio, and :func:`figure_text`, the text scale the page sends.
"""

from __future__ import annotations

import math

#: The figures' text scale where they are seen from afar (presenter mode) and on a phone: their fonts grow,
#: their PNGs keep their pixels or get narrower (:func:`deepcut.render.style.new_figure`; both draw the
#: figures' compact forms, :data:`deepcut.render.style.COMPACT_TEXT`).
LARGE_TEXT = 2.4
PHONE_TEXT = 1.8
#: The widest screen treated as a phone (CSS pixels).
PHONE_WIDTH = 640

#: How long a typed value waits for another edit before it is committed (milliseconds).
COMMIT_MS = 450

#: The panels that show a matplotlib figure (its title at the picture's top): they keep a label's height free
#: above the picture, and their buttons move up into it.
FIGURE_PANELS = (":is(#loss-plot, #soft-maps, #affinity, #compare, #compare-pair, #sweep, #train-frame, #pca, "
                 "#walk-picture)")

CSS = """
#header h1 { margin-bottom: 0.1em; }
#header p { margin: 0.2em 0; }
#presenter-toggle { flex-grow: 0 !important; min-width: 12em !important; }
#status { min-height: 2.6em; }
/* A failed request: its message is the toast (it stays until closed); the outputs keep the last result instead
   of being covered by red "Error" marks (which also hid the old pictures and overlapped the old status). */
[data-testid="status-tracker"]:has(> .error) { display: none !important; }
#status p { margin: 0.1em 0; }
#overlay img { width: 100%; height: 100%; object-fit: scale-down; }
#walk-picture img, #compare-pair img, #sweep img { width: 100%; height: 100%; object-fit: contain; }
FIGURE_PANELS { padding-top: 2.2em; }
FIGURE_PANELS .icon-button-wrapper { transform: translateY(-100%); } /* beside the label, not over the title */
@media (min-width: 641px) { #settings-col > #image-examples { order: -1; } }
body.presenter #settings-col > #image-examples { order: 0; }
body:not(.presenter):not(.walking) #walk-col { display: none !important; }
body.walking:not(.presenter) #walk-col { flex-grow: 10 !important; }  /* the walkthrough's figures larger */
body.walking:not(.presenter) #settings-col { flex-grow: 4 !important; }
#walk-nav { align-items: center; }
#walk-nav button { flex-grow: 0 !important; min-width: 7em !important; }
#walk-title { flex-grow: 1 !important; text-align: center; }
#walk-title p { margin: 0; font-weight: 600; }
@media (max-width: 640px) {
  #walk-keys { display: none !important; }  /* keyboard shortcuts: no keyboard on a phone */
  #header h1 { font-size: 1.35em; }
  #header p:nth-of-type(n+2) { display: none; }
  #notice details { display: none; }
  .info-text { font-size: 12px !important; line-height: 1.3; }
  #sweep .image-frame, #sweep .image-container, #sweep button { overflow-x: auto !important;
                                                                justify-content: flex-start !important; }
  #sweep img { width: 1100px !important; max-width: none !important; height: auto !important; }
  #live-row { flex-direction: column !important; }
  #live-controls { display: contents !important; }
  #live-controls > * { order: 3; }
  #live-controls > #live-camera { order: 1; }
  #live-results { order: 2; }
  .form:has(> #backbone) > .block:not(#backbone) { display: none; }
  #presenter-toggle { display: none; }
  #input-image { height: 220px !important; }
  .block:has(> .icon-buttons) > .icon-buttons, .image-container .icon-buttons { opacity: 0.55; }
}
body.presenter { --text-md: 19px; --text-lg: 21px; --text-sm: 16px; --text-xs: 14px; --text-xl: 24px;
                 --block-label-text-size: 15px; --block-info-text-size: 14px; --block-title-text-size: 18px;
                 --prose-text-size: 18px; --input-text-size: 18px; --button-large-text-size: 20px; }
body.presenter .gradio-container { max-width: 100% !important; padding-top: 0 !important; }
body.presenter main.contain { padding-top: 4px !important; }
body.presenter #header p, body.presenter .form:has(> #backbone), body.presenter #notice details,
body.presenter .info-text, body.presenter #downloads, body.presenter #results-small,
body.presenter #objects-panel, body.presenter #correct-help,
body.presenter #opacity, body.presenter #compare-panel, body.presenter #slides-panel,
body.presenter #method-section, body.presenter #teach-panel, body.presenter #more-settings,
body.presenter #image-settings .setting-layer, body.presenter #image-settings .setting-facet,
body.presenter #image-settings .setting-refine, body.presenter #walk-start { display: none !important; }
body:not(.presenter) #pin-here { display: none !important; }
body.presenter.pinned #walk-col, body.presenter.pinned #overlay, body.presenter.pinned #click-mode,
body.presenter.pinned #pin-here, body.presenter.pinned #correct-row, body.presenter.pinned #pin-btn,
body.presenter.pinned #pair-caption, body.presenter.pinned #compare-panel #sweep-row,
body.presenter.pinned #compare-panel #sweep, body.presenter.pinned #compare-panel #sweep-caption,
body.presenter.pinned #compare-panel #sweep-file { display: none !important; }
body.presenter.pinned #compare-panel { display: flex !important; flex-direction: column !important;
                                       flex: 1 1 0 !important; min-height: 0; }
body.presenter.pinned #compare-panel > .label-wrap { display: none !important; }
body.presenter.pinned #compare-panel > div { flex: 1 1 0 !important; display: flex !important;
                                            flex-direction: column !important; width: 100% !important; }
body.presenter.pinned #results-col { flex: 3 1 0 !important; }
body.presenter.pinned #compare-panel > div > .column { flex: 1 1 0 !important; min-height: 0; }
body.presenter.pinned #compare-pair { flex: 1 1 0 !important; height: auto !important; min-height: 200px; }
body.presenter.pinned #compare-pair .image-container, body.presenter.pinned #compare-pair .image-frame,
body.presenter.pinned #compare-pair button { height: 100% !important; }
body.presenter #notice { padding: 2px 8px !important; margin: 0 !important; }
body.presenter #notice p { margin: 0; font-size: 15px !important; line-height: 1.3; }
body.presenter #correct-row { gap: 6px !important; flex-wrap: nowrap !important; }
body.presenter #correct-row button { padding: 2px 6px !important; font-size: 14px !important; min-width: 0 !important;
                                     flex: 1 1 0 !important; }
body.presenter #image-examples { padding: 2px !important; }
body.presenter #image-examples .label, body.presenter #image-examples > span { display: none !important; }
body.presenter #header h1 { font-size: 1.15em; margin: 0; }
body.presenter #settings-col { flex: 0 0 290px !important; min-width: 250px !important; }
body.presenter #results-col { flex: 1 1 0 !important; min-width: 0 !important; }
body.presenter #walk-col { flex: 1.3 1 0 !important; min-width: 0 !important; }
body.presenter #input-image { height: 90px !important; }
body.presenter #input-image [data-testid=upload-text] { font-size: var(--text-sm) !important; padding-top: 1.5em; }
body.presenter #input-image:has([data-testid=upload-text]) { height: 112px !important; }
body.presenter #input-image [data-testid=upload-text] .prompt { white-space: normal !important; line-height: 1.2; }
body.presenter #input-image [data-testid=upload-icon] { display: none !important; }
body.presenter #segment-btn { padding: 4px !important; }
body.presenter .gallery-item img, body.presenter .gallery-item { max-height: 40px !important; }
body.presenter #image-examples .gallery-item { max-width: 58px !important; }
body.presenter #status { min-height: 0; max-height: 5.6em; overflow-y: auto !important; flex-shrink: 0 !important; }
body.presenter #status p { margin: 0; font-size: 16px !important; line-height: 1.35; }
body.presenter #status p { font-size: 15px !important; }
body.presenter #click-mode > span, body.presenter #click-mode .block-title { display: none; }
body.presenter #click-mode label { padding: 1px 6px !important; font-size: 14px !important; }
body.presenter #click-mode .wrap { gap: 4px !important; }
body.presenter #results-col, body.presenter #walk-col, body.presenter #settings-col {
  height: calc(100vh - var(--col-top, 150px) - 16px); flex-wrap: nowrap !important; overflow: hidden; }
body.presenter #settings-col { overflow-y: auto; }
body.presenter #settings-col > *, body.presenter #image-settings { flex-shrink: 0 !important; }
body.presenter footer { display: none !important; }
body.presenter #image-settings .wrap label { padding: 2px 8px !important; font-size: 15px !important; }
body.presenter #image-settings .wrap { gap: 4px !important; }
body.presenter #image-settings .block { padding: 6px 10px !important; }
body.presenter #overlay, body.presenter #walk-picture { flex: 1 1 0 !important; min-height: 160px;
                                                        height: auto !important; }
body.presenter #walk-heading, body.presenter #walk-keys { display: none !important; }
body.presenter #click-mode { padding: 2px 6px !important; }
body.presenter #walk-caption p { margin: 0; font-size: 15px !important; line-height: 1.3; }
:fullscreen { background: black; }
:fullscreen img { width: 100vw !important; height: 100vh !important; object-fit: contain !important;
                  max-width: none !important; max-height: none !important; }
""".replace("FIGURE_PANELS", FIGURE_PANELS)

#: On load: presenter mode from ``?presenter=1``; typed values clamped and committed once quiet;
#: the keyboard shortcuts (see the module doc). Returns whether presenter mode is on and the figures' text
#: scale (:data:`LARGE_TEXT` in presenter mode, :data:`PHONE_TEXT` on a phone, else 1).
LOAD_JS = """() => {
  const WAIT = %(wait)d, timers = new WeakMap();
  const clamp = (t) => {
    if (t.value === '') return;
    let v = parseFloat(t.value); const lo = parseFloat(t.min), hi = parseFloat(t.max);
    if (!Number.isNaN(lo) && v < lo) v = lo;
    if (!Number.isNaN(hi) && v > hi) v = hi;
    if (String(v) !== t.value) { t.value = String(v); t.dispatchEvent(new Event('input', {bubbles: true})); }
  };
  const commit = (t) => {
    clearTimeout(timers.get(t));
    timers.set(t, setTimeout(() => {
      clamp(t);
      if (document.activeElement === t) t.blur(); else t.dispatchEvent(new FocusEvent('blur'));
    }, WAIT));
  };
  const visible = (sel) => { const e = document.querySelector(sel); return e && e.offsetParent !== null ? e : null; };
  const click = (sel) => { const b = visible(sel); if (b) b.click(); return !!b; };
  const nudge = (delta) => {  // the replay's frame slider when it is shown, else the walkthrough's steps
    const r = visible('#walk-frame input[type=range]');
    if (!r) return click(delta > 0 ? '#walk-next' : '#walk-prev');
    const v = Math.min(parseFloat(r.max), Math.max(parseFloat(r.min), parseFloat(r.value) + delta));
    if (v === parseFloat(r.value)) return click(delta > 0 ? '#walk-next' : '#walk-prev');
    const box = document.querySelector('#walk-frame input[type=number]');
    box.value = String(v); box.dispatchEvent(new Event('input', {bubbles: true})); commit(box);
    return true;
  };
  document.addEventListener('focusout', (e) => {
    if (e.target && e.target.matches && e.target.matches('input[type=number]')) clamp(e.target);
  }, true);
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t && t.matches && t.matches('input[type=number]')) {
      if (e.key === 'Enter') { e.preventDefault(); clamp(t); commit(t); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = 'input:not([type=radio]):not([type=checkbox]), textarea, select, [contenteditable=true]';
    if (t && t.closest && t.closest(typing)) return;
    const walking = visible('#walk-col');
    let done = false;
    if (e.key === 'ArrowRight' && walking) done = nudge(1);
    else if (e.key === 'ArrowLeft' && walking) done = nudge(-1);
    else if ((e.key === 'PageDown' || e.key === 'n' || e.key === 'N') && walking) done = click('#walk-next');
    else if ((e.key === 'PageUp' || e.key === 'p' || e.key === 'P') && walking) done = click('#walk-prev');
    else if (/^[1-9]$/.test(e.key)) {
      const k = document.querySelector('#image-settings input[type=number]');
      if (k && !k.disabled) { k.value = e.key; clamp(k); k.dispatchEvent(new Event('input', {bubbles: true}));
                             commit(k); done = true; }
    } else if (e.key === 'f' || e.key === 'F') {
      if (document.fullscreenElement) document.exitFullscreen();
      else { const o = visible('#overlay'); if (o) o.requestFullscreen(); }
      done = true;
    }
    if (done) e.preventDefault();
  }, true);
  const fit = () => {  // presenter mode: the columns end at the bottom of the screen (see --col-top in CSS)
    const c = document.querySelector('#results-col');
    if (c) document.body.style.setProperty('--col-top', (c.getBoundingClientRect().top + window.scrollY) + 'px');
  };
  window.addEventListener('resize', fit);
  setInterval(fit, 700);
  const on = new URLSearchParams(window.location.search).has('presenter');
  document.body.classList.toggle('presenter', on);
  return [on, on ? %(large)s : (window.innerWidth <= %(phone)d ? %(small)s : 1)];
}""" % {"wait": COMMIT_MS, "phone": PHONE_WIDTH, "large": LARGE_TEXT, "small": PHONE_TEXT}

#: The presenter checkbox: the body's class, and the figures' text scale (see :data:`LARGE_TEXT`).
TOGGLE_JS = """(on) => { document.body.classList.toggle('presenter', on);
  return [on, on ? %(large)s : (window.innerWidth <= %(phone)d ? %(small)s : 1)]; }""" % {
    "phone": PHONE_WIDTH, "large": LARGE_TEXT, "small": PHONE_TEXT}

#: After a tap on an example or on *Segment*: on a phone, bring the result (its status line, then the
#: overlay) to the top of the screen; elsewhere nothing moves.
SCROLL_JS = """() => {
  if (window.innerWidth <= 640) {
    const s = document.querySelector('#status');
    if (s) s.scrollIntoView({behavior: 'instant', block: 'start'});
  }
}"""

#: After a click on the overlay in *show its affinities* mode: the affinity picture, far below the overlay on a
#: laptop or a phone, is brought on screen (unless it is already there); presenter mode shows the click in the
#: walkthrough instead.
AFFINITY_JS = """(mode) => {
  if (mode !== 'affinity' || document.body.classList.contains('presenter')) return;
  const a = document.querySelector('#affinity');
  if (!a) return;
  const b = a.getBoundingClientRect();
  if (b.top < 0 || b.bottom > window.innerHeight) a.scrollIntoView({behavior: 'instant', block: 'center'});
}"""

#: A result is pinned / unpinned: presenter mode then shows the pinned result beside the current one in place of
#: the overlay and the walkthrough (class ``pinned`` on the body), and the overlay again once unpinned.
PIN_JS = "() => { document.body.classList.add('pinned'); }"
UNPIN_JS = "() => { document.body.classList.remove('pinned'); }"

#: The walkthrough's column appears (it is always shown in presenter mode), and the page scrolls to it: on a
#: laptop it opens at the top of the row (above the button, once the visitor has scrolled down to it), on a
#: phone far below; either way it seemed to do nothing.
WALK_JS = """() => {
  document.body.classList.add('walking');
  requestAnimationFrame(() => {
    const c = document.querySelector('#walk-col');
    if (c) c.scrollIntoView({behavior: 'instant', block: 'start'});
  });
}"""


def figure_text(text: float | None) -> float:
    """The figures' text scale the page sends (a hidden field :data:`LOAD_JS` sets): 1 unless it is a sane
    larger one (at most 4)."""
    try:
        value = float(text or 1.0)
    except (TypeError, ValueError):
        return 1.0
    return min(max(value, 1.0), 4.0) if math.isfinite(value) else 1.0
