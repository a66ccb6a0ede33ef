// The browse tab: one card per session with its model, recording, state, listeners and a
// progress bar that moves by the page's own clock. The server pushes each change over the
// feed socket /ws/sessions (a session created or changing state, a listener count), so the
// list is fetched once when the feed (re)connects, and every FALLBACK_MS only while it is
// down. Cards are updated in place so that focus stays where it was.
// A live session's listener count is the latest word on it, whichever way it came (a count
// push, the session's card, the player's socket: noteCount), and the player is told it
// (onCount), so that the page says one number; an ended session's card shows none.
// Where listening needs a sign-in (LISTEN_ACCESS=operators), it says so once and stops asking.

import { api } from "./api.js";
import { Connection } from "./connection.js";
import { LIVE_STATES, STATE_LABELS, duration, errorNotice, notice } from "./format.js";

const FALLBACK_MS = 30000; // the list is fetched this often while the feed is down
const FEED_PING_MS = 25000; // the feed says nothing between changes: a ping keeps a dead link noticed
const FEED_SILENCE_MS = 60000;
const MAX_CARDS = 200; // as many as GET /api/sessions returns
const TICK_MS = 250;

export class SessionList {
  constructor({ onJoin, config, onCount = null }) {
    this.onJoin = onJoin;
    this.onCount = onCount; // (session id, listeners): every count a card shows
    this.signInUrl = config.signInUrl;
    this.signInNeeded = false;
    this.list = document.getElementById("sessions-list");
    this.empty = document.getElementById("sessions-empty");
    this.error = document.getElementById("sessions-error");
    this.template = document.getElementById("session-card");
    this.panel = document.getElementById("panel-browse");
    this.cards = new Map(); // session id -> {element, session, fetchedAt}
    this.timer = null;
    this.loading = null;
    this.again = false; // asked to refresh while a refresh was under way
    this.loaded = false; // the cards are the list as fetched since the feed last subscribed
    this.subscribed = false; // the feed is open: every change reaches the page without a fetch

    document.getElementById("sessions-refresh").addEventListener("click", () => this.refresh());
    document.addEventListener("visibilitychange", () => this.schedule());
    setInterval(() => this.tick(), TICK_MS);

    // A visitor the list shows nothing (LISTEN_ACCESS=link) has nothing to hear either.
    if (config.operator || config.listenAccess === "public") this.openFeed(config.wsHost);
  }

  get visible() {
    return !this.panel.hidden && document.visibilityState === "visible" && !this.signInNeeded;
  }

  // A feed still connecting will fetch the list itself, once it says "subscribed".
  get feedConnecting() {
    return Boolean(this.feed) && !this.subscribed && ["connecting", "open"].includes(this.feed.state);
  }

  openFeed(wsHost) {
    this.feed = new Connection(feedUrl(wsHost), { pingMs: FEED_PING_MS, silenceMs: FEED_SILENCE_MS });
    this.feed.addEventListener("message", (event) => this.hear(event.detail));
    this.feed.addEventListener("state", (event) => {
      if (["connecting", "open"].includes(event.detail.state)) return;
      const wasSubscribed = this.subscribed;
      this.subscribed = false; // changes may be missed until it is back: the fallback fetches take over
      if (!this.loaded) this.schedule(); // the first list does not wait for a feed that failed
      else if (wasSubscribed) this.armFallback();
    });
    this.feed.open();
  }

  hear(message) {
    if (message.type === "subscribed") {
      this.subscribed = true;
      this.feed.resetBackoff();
      clearTimeout(this.timer);
      this.timer = null;
      this.loaded = false; // one fetch for what changed before the feed opened: now, or when the tab shows
      this.schedule();
    } else if (message.type === "session") {
      this.place(message.session);
    } else if (message.type === "count") {
      this.noteCount(message.id, message.client_count);
    }
  }

  // News of a session's listeners: a fetch of the list sent before it does not undo it.
  noteCount(id, count) {
    const card = this.cards.get(id);
    if (!card) return;
    card.countAt = performance.now();
    if (card.session.client_count === count) return;
    card.session = { ...card.session, client_count: count };
    this.showListeners(card);
  }

  // Fetch the list now if the tab shows and the page may have missed a change that the feed
  // will not bring (it is down, or there is none).
  schedule() {
    if (!this.visible) return;
    if (this.subscribed ? this.loaded : this.feedConnecting) return;
    this.refresh();
  }

  armFallback() {
    if (!this.timer && this.visible) this.timer = setTimeout(() => this.refresh(), FALLBACK_MS);
  }

  async refresh() {
    if (this.loading) {
      this.again = true; // this fetch may have been answered before the change that asks for another
      return this.loading;
    }
    this.loading = this.load().finally(() => {
      this.loading = null;
      clearTimeout(this.timer);
      this.timer = null;
      if (this.again) {
        this.again = false;
        this.refresh();
      } else if (!this.subscribed) {
        this.armFallback();
      }
    });
    return this.loading;
  }

  async load() {
    let sessions;
    const sentAt = performance.now();
    try {
      sessions = await api.sessions();
    } catch (error) {
      this.signInNeeded = error.status === 401;
      if (this.signInNeeded) this.feed?.close(); // nothing will come to this visitor
      errorNotice(this.error, error, this.signInUrl);
      return;
    }
    notice(this.error, "");
    this.loaded = true;
    const fetchedAt = performance.now();
    const seen = new Set();
    let previous = null;
    for (const session of sessions) {
      seen.add(session.id);
      let card = this.cards.get(session.id);
      if (!card) {
        card = { element: this.makeCard(session.id), session };
        this.cards.set(session.id, card);
      }
      // keep the server's order (newest first) without moving a card that is already in place
      const expected = previous ? previous.nextElementSibling : this.list.firstElementChild;
      if (expected !== card.element) {
        if (previous) previous.after(card.element);
        else this.list.prepend(card.element);
      }
      previous = card.element;
      this.update(card, session, fetchedAt, sentAt);
    }
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.element.remove();
        this.cards.delete(id);
      }
    }
    this.empty.hidden = sessions.length > 0;
  }

  // A pushed card: a new session goes in its place (newest first, as the server lists them).
  place(session) {
    let card = this.cards.get(session.id);
    if (!card) {
      card = { element: this.makeCard(session.id), session };
      this.cards.set(session.id, card);
      const older = [...this.list.children].find((element) => {
        const other = this.cards.get(Number(element.dataset.sessionId));
        return other && listedBefore(session, other.session);
      });
      if (older) older.before(card.element);
      else this.list.append(card.element);
      while (this.list.children.length > MAX_CARDS) {
        const last = this.list.lastElementChild;
        this.cards.delete(Number(last.dataset.sessionId));
        last.remove();
      }
    }
    this.update(card, session, performance.now());
    this.empty.hidden = this.cards.size > 0;
  }

  // The card shows `session` as it was at `at` (asked for at `sentAt`); an ended session never
  // goes back to live (news of it from before its end, arriving late), and a count heard since
  // the list was asked for stays.
  update(card, session, at, sentAt = at) {
    if (card.fetchedAt !== undefined && !LIVE_STATES.has(card.session.state) && LIVE_STATES.has(session.state)) return;
    if (card.countAt > sentAt) session = { ...session, client_count: card.session.client_count };
    Object.assign(card, { session, fetchedAt: at });
    this.fill(card);
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
    const when = document.createElement("span");
    when.className = "created"; // "created 05:47 AM" never breaks (app.css)
    when.textContent = `created ${created}`;
    field("sub").replaceChildren(`Session ${session.id} · `, when);
    this.showListeners({ element, session });
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

  showListeners({ element, session }) {
    const live = LIVE_STATES.has(session.state);
    const listeners = element.querySelector('[data-field="listeners"]');
    listeners.textContent = String(session.client_count);
    listeners.parentElement.hidden = !live; // nobody listens to an ended session
    if (live) this.onCount?.(session.id, session.client_count);
  }

  // A running session's position moves on with the page's own clock from the last news of it.
  tick() {
    if (!this.visible) return;
    for (const card of this.cards.values()) if (card.session.state === "running") this.drawProgress(card);
  }

  drawProgress({ element, session, fetchedAt }) {
    let position = session.progress_secs || 0;
    if (session.state === "running") position += (performance.now() - fetchedAt) / 1000;
    // a live source's length is what has played until its input ends
    const total = session.live_input ? Math.max(position, session.duration_secs || 0) : session.duration_secs || 0;
    position = Math.min(position, total);
    const bar = element.querySelector('[data-field="progress"]');
    bar.max = total || 1;
    bar.value = position;
    bar.setAttribute("aria-label", `Position in ${session.media_filename}`);
    element.querySelector('[data-field="time"]').textContent = `${duration(position)} / ${duration(total)}`;
  }
}

// Is `a` listed before `b` (newest first, as GET /api/sessions orders them)?
function listedBefore(a, b) {
  const [ta, tb] = [Date.parse(a.created_at), Date.parse(b.created_at)];
  return ta === tb ? a.id > b.id : ta > tb;
}

function feedUrl(wsHost) {
  if (wsHost && /^wss?:\/\//.test(wsHost)) return `${wsHost.replace(/\/$/, "")}/ws/sessions`;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${wsHost || location.host}/ws/sessions`;
}
