// The browse tab: one card per session with its model, recording, state, listeners and a
// progress bar that moves between refreshes. The list refreshes itself while the tab is
// open and the page visible; cards are updated in place so that focus stays where it was.
// Where listening needs a sign-in (LISTEN_ACCESS=operators), it says so once and stops asking.

import { api } from "./api.js";
import { LIVE_STATES, STATE_LABELS, duration, errorNotice, notice } from "./format.js";

const REFRESH_MS = 3000;
const TICK_MS = 250;

export class SessionList {
  constructor({ onJoin, signInUrl }) {
    this.onJoin = onJoin;
    this.signInUrl = signInUrl;
    this.signInNeeded = false;
    this.list = document.getElementById("sessions-list");
    this.empty = document.getElementById("sessions-empty");
    this.error = document.getElementById("sessions-error");
    this.template = document.getElementById("session-card");
    this.panel = document.getElementById("panel-browse");
    this.cards = new Map(); // session id -> {element, session, fetchedAt}
    this.timer = null;
    this.loading = null;

    document.getElementById("sessions-refresh").addEventListener("click", () => this.refresh());
    document.addEventListener("visibilitychange", () => this.schedule());
    setInterval(() => this.tick(), TICK_MS);
  }

  get visible() {
    return !this.panel.hidden && document.visibilityState === "visible" && !this.signInNeeded;
  }

  // (Re)arm the automatic refresh: now if the tab is showing, then every REFRESH_MS.
  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.visible) this.refresh();
  }

  async refresh() {
    if (this.loading) return this.loading;
    this.loading = this.load().finally(() => {
      this.loading = null;
      clearTimeout(this.timer);
      this.timer = this.visible ? setTimeout(() => this.refresh(), REFRESH_MS) : null;
    });
    return this.loading;
  }

  async load() {
    let sessions;
    try {
      sessions = await api.sessions();
    } catch (error) {
      this.signInNeeded = error.status === 401;
      errorNotice(this.error, error, this.signInUrl);
      return;
    }
    notice(this.error, "");
    const fetchedAt = performance.now();
    const seen = new Set();
    let previous = null;
    for (const session of sessions) {
      seen.add(session.id);
      let card = this.cards.get(session.id);
      if (!card) {
        card = { element: this.makeCard(session.id) };
        this.cards.set(session.id, card);
      }
      Object.assign(card, { session, fetchedAt });
      // keep the server's order (newest first) without moving a card that is already in place
      const expected = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== card.element) {
        if (previous) previous.after(card.element);
        else this.list.prepend(card.element);
      }
      previous = card.element;
      this.fill(card);
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.element.remove();
        this.cards.delete(id);
      }
    }
    this.empty.hidden = sessions.length > 0;
  }

  makeCard(id) {
    const element = this.template.content.firstElementChild.cloneNode(true);
    element.dataset.sessionId = id;
    element.querySelector('[data-action="join"]').addEventListener("click", () => this.onJoin(id));
    return element;
  }

  fill({ element, session }) {
    const field = (name) => element.querySelector(`[data-field="${name}"]`);
    field("media").textContent = session.media_filename;
    field("model").textContent = session.model_name;
    const created = new Date(session.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    field("sub").textContent = `Session ${session.id} · created ${created}`;
    field("listeners").textContent = String(session.client_count);
    const state = field("state");
    state.textContent = STATE_LABELS[session.state] ?? session.state;
    state.dataset.state = session.state;
    const note = session.error || session.stop_reason || (session.degraded ? "The server is falling behind on this session." : "");
    field("note").textContent = note;
    field("note").hidden = !note;
    const join = element.querySelector('[data-action="join"]');
    const live = LIVE_STATES.has(session.state);
    join.textContent = live ? "Join" : "Open transcript";
    join.setAttribute("aria-label", `${live ? "Join" : "Open the transcript of"} session ${session.id}: ${session.media_filename}`);
    this.drawProgress(this.cards.get(session.id));
  }

  // Between refreshes a running session's position moves on with the page's own clock.
  tick() {
    if (!this.visible) return;
    for (const card of this.cards.values()) if (card.session.state === "running") this.drawProgress(card);
  }

  drawProgress({ element, session, fetchedAt }) {
    const total = session.duration_secs || 0;
    let position = session.progress_secs || 0;
    if (session.state === "running") position += (performance.now() - fetchedAt) / 1000;
    position = Math.min(position, total);
    const bar = element.querySelector('[data-field="progress"]');
    bar.max = total || 1;
    bar.value = position;
    bar.setAttribute("aria-label", `Position in ${session.media_filename}`);
    element.querySelector('[data-field="time"]').textContent = `${duration(position)} / ${duration(total)}`;
  }
}
