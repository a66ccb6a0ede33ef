// Subtitles in time with the audio: the live partial line and the final transcript below it.
//
// Every subtitle waits in a queue (in arrival order) until the listener's playout position
// reaches its start, then shows; with no playout estimate it shows at once. Finals are kept
// once per index (a reconnect replays them); finals with the same `cue` grow one line, the
// same cues the exports have. Each live final adds a speech-to-screen sample:
// the playout position when it appeared minus its end, i.e. how long after the listener heard
// the phrase end its final text appeared; the page shows the median of the last minute.
// A line whose speaker is known is led by the speaker's label in their colour: the session's
// name for them, else "Speaker N"; renamed speakers are relabelled on every line shown. Where
// `onRename(speaker, button)` is given (an operator's page) each final's label is a button.
// A live line without words is a quiet box ("Waiting for speech…" until the first words,
// app.css), never an empty black bar, and it goes once the session has ended (end()).
// Following the newest line, the transcript lands on a line's top edge: its top line is whole.

import { duration } from "./format.js";

const WINDOW_MS = 60_000;
const STICK_PX = 32; // this close to the bottom counts as "at the bottom": keep scrolling

export class Subtitles {
  constructor(playout, { onRename = null } = {}) {
    this.playout = playout; // () => seconds, or null when unknown
    this.onRename = onRename;
    this.names = {}; // the session's speaker names: {"0": "Diane"}
    this.diarize = true; // false: the session does not tell speakers apart, no label shows
    this.partial = document.getElementById("subtitle-partial");
    this.finals = document.getElementById("subtitle-finals");
    this.scroller = document.getElementById("subtitle-scroller");
    this.jump = document.getElementById("subtitle-jump");
    this.delay = document.getElementById("player-delay");
    this.stick = true;
    this.scroller.addEventListener("scroll", () => {
      this.stick = this.atBottom();
      if (this.stick) this.jump.hidden = true;
    });
    this.jump.addEventListener("click", () => {
      this.stick = true;
      this.scrollToEnd();
      this.jump.hidden = true;
    });
    this.clear();
  }

  clear() {
    this.queue = [];
    this.seen = new Set();
    this.samples = [];
    this.partial.replaceChildren();
    this.partial.hidden = false;
    this.partial.dataset.waiting = ""; // until the first words: "Waiting for speech…" (app.css)
    this.finals.replaceChildren();
    this.finals.style.paddingBottom = "";
    this.jump.hidden = true;
    this.stick = true;
    this.showDelay();
  }

  // A subtitle message; history: a final the server replays on join (no delay sample).
  add(event, { history = false } = {}) {
    if (event.is_final) {
      const key = event.index ?? `${event.start}:${event.text}`;
      if (this.seen.has(key)) return;
      this.seen.add(key);
      this.queue.push({ ...event, history });
    } else {
      this.dropQueuedPartial();
      this.queue.push(event);
    }
    this.tick();
  }

  // A finished session's transcript (from the REST API, one object per cue): all of it, at once.
  load(cues) {
    this.clear();
    cues.forEach((cue, index) => this.showFinal({ ...cue, index, cue: index, history: true }));
    this.end();
  }

  // The session has ended and everything is shown: no live line any more.
  end() {
    this.partial.replaceChildren();
    this.partial.hidden = true;
  }

  // The live partial line goes (the connection was lost; the server sends a fresh one).
  clearPartial() {
    this.dropQueuedPartial();
    this.partial.replaceChildren();
  }

  // The session's speaker names (session_info, a speakers message, the REST API's session):
  // every label shown takes them at once; a session that does not tell speakers apart has none.
  setSpeakers(names, diarize = true) {
    const known = names ?? {};
    if (diarize === this.diarize && JSON.stringify(known) === JSON.stringify(this.names)) return;
    this.names = { ...known };
    this.diarize = diarize;
    for (const label of [...this.partial.querySelectorAll(".speaker"), ...this.finals.querySelectorAll(".speaker")]) {
      if (diarize) {
        this.showLabel(label, Number(label.dataset.speakerId));
      } else {
        delete label.parentElement.dataset.speaker;
        label.remove();
      }
    }
  }

  // What the session calls a speaker (0-based).
  speakerName(speaker) {
    return this.names[String(speaker)] || defaultName(speaker);
  }

  dropQueuedPartial() {
    const last = this.queue[this.queue.length - 1];
    if (last && !last.is_final) this.queue.pop();
  }

  // Show what the playout has reached; called often by the player.
  tick() {
    const position = this.playout();
    while (this.queue.length) {
      const next = this.queue[0];
      const due = position === null || (!next.is_final && !next.text) || next.start <= position;
      if (!due) break;
      this.queue.shift();
      if (next.is_final) this.showFinal(next, position);
      else this.showPartial(next);
    }
    this.showDelay();
  }

  // Everything still waiting, at once (the session ended and its audio is done).
  flush() {
    while (this.queue.length) {
      const next = this.queue.shift();
      if (next.is_final) this.showFinal(next, null);
      else this.showPartial(next);
    }
  }

  // An empty partial empties the line (an :empty line is a quiet box, not a black bar: app.css).
  showPartial(event) {
    const speaker = this.diarize && event.text ? event.speaker : null;
    if (event.text) {
      const text = document.createElement("span");
      text.className = "partial-text";
      text.textContent = event.text;
      this.partial.replaceChildren(...(speaker != null ? [this.label(speaker, { button: false })] : []), text);
      delete this.partial.dataset.waiting;
    } else {
      this.partial.replaceChildren();
    }
    this.partial.dataset.start = event.start;
    setSpeaker(this.partial, speaker);
  }

  // A final joins its cue's line (the server numbers the cues), or starts the next cue's
  // line; each final stays its own span (data-index) inside its line.
  showFinal(event, position = null) {
    let line = this.finals.lastElementChild;
    if (!line || event.cue == null || line.dataset.cue !== String(event.cue)) {
      const speaker = this.diarize ? event.speaker : null;
      line = document.createElement("li");
      if (event.cue != null) line.dataset.cue = event.cue;
      setSpeaker(line, speaker);
      const time = document.createElement("span");
      time.className = "timestamp";
      time.textContent = duration(event.start);
      line.append(time);
      if (speaker != null) line.append(this.label(speaker, { button: Boolean(this.onRename) }));
      const body = document.createElement("span");
      body.className = "text";
      line.append(body);
      this.finals.append(line);
    }
    const body = line.querySelector(".text");
    const segment = document.createElement("span");
    segment.className = "segment";
    if (event.index != null) segment.dataset.index = event.index;
    segment.dataset.start = event.start;
    segment.dataset.end = event.end;
    // a final's text starts with a space where it starts a word, so a cue's texts concatenate
    segment.textContent = body.childElementCount ? event.text : event.text.trimStart();
    body.append(segment);
    line.dataset.end = event.end;
    delete this.partial.dataset.waiting;
    if (!event.history && position !== null) this.samples.push({ at: performance.now(), secs: position - event.end });
    if (this.stick) this.scrollToEnd();
    else this.jump.hidden = false;
  }

  // A speaker's label: a button that renames them on an operator's page, else plain text.
  label(speaker, { button }) {
    const label = document.createElement(button ? "button" : "span");
    label.className = "speaker";
    label.dataset.speakerId = speaker;
    if (button) {
      label.type = "button";
      label.addEventListener("click", () => this.onRename(speaker, label));
    }
    this.showLabel(label, speaker);
    return label;
  }

  showLabel(label, speaker) {
    const name = this.speakerName(speaker);
    if (label.textContent !== name) label.textContent = name;
    if (label.tagName === "BUTTON") label.setAttribute("aria-label", `Rename ${name}`);
  }

  // The median speech-to-screen delay of the finals shown in the last minute.
  get medianDelay() {
    const since = performance.now() - WINDOW_MS;
    this.samples = this.samples.filter((sample) => sample.at >= since);
    if (!this.samples.length) return null;
    const sorted = this.samples.map((sample) => sample.secs).sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  }

  showDelay() {
    const median = this.medianDelay;
    const text =
      median === null
        ? "Speech-to-screen delay: –"
        : `Speech-to-screen delay: ${median.toFixed(2)} s (median of ${this.samples.length} in the last minute)`;
    if (this.delay.textContent !== text) this.delay.textContent = text;
    if (median !== null) this.delay.dataset.seconds = median.toFixed(3);
    else delete this.delay.dataset.seconds;
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= STICK_PX;
  }

  // To the newest line, landing on a line's top edge so that the top line shows whole, not cut
  // in half: the list's bottom padding grows by what that takes (less than a line).
  scrollToEnd() {
    const s = this.scroller;
    this.finals.style.paddingBottom = "";
    const end = s.scrollHeight - s.clientHeight; // the scrollTop of the bottom, without the extra
    let top = null; // the first line that starts at or below that
    const origin = s.getBoundingClientRect().top + s.clientTop - s.scrollTop;
    for (let line = this.finals.lastElementChild; line && end > 0; line = line.previousElementSibling) {
      const at = line.getBoundingClientRect().top - origin;
      if (at < end - 0.5) break;
      top = at;
    }
    if (top !== null && top > end) {
      const padding = parseFloat(getComputedStyle(this.finals).paddingBottom) || 0;
      this.finals.style.paddingBottom = `${padding + top - end}px`;
    }
    s.scrollTop = s.scrollHeight;
  }
}

export function defaultName(speaker) {
  return `Speaker ${speaker + 1}`;
}

function setSpeaker(element, speaker) {
  if (speaker == null) delete element.dataset.speaker;
  else element.dataset.speaker = String(speaker % 8);
}
