// The session's WebSocket, kept open: pings every few seconds (for the clock offset, and to
// notice a dead link), and after an unexpected close reconnects with exponential backoff.
// Emits "message" (detail: the parsed message) and "state" (detail {state, retryInSecs}),
// where state is connecting | open | waiting | closed.

import { localNow } from "./clock.js";

const PING_MS = 2000;
const SILENCE_MS = 8000; // the server sends status every second; this long without a word is a dead link
const BACKOFF_SECS = [0.5, 1, 2, 4, 8, 15];

export class Connection extends EventTarget {
  // pingMs, silenceMs: a socket whose server says little (the Browse tab's feed) pings less often.
  constructor(url, { pingMs = PING_MS, silenceMs = SILENCE_MS } = {}) {
    super();
    this.url = url;
    this.pingMs = pingMs;
    this.silenceMs = silenceMs;
    this.socket = null;
    this.attempt = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
  }

  open() {
    this.stopped = false;
    this.connect();
  }

  // Closes for good: no reconnect.
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.drop();
    this.emitState("closed");
  }

  // A fresh connection now: after a successful join the backoff starts again from its first step.
  resetBackoff() {
    this.attempt = 0;
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  connect() {
    this.emitState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.lastHeard = performance.now();
      this.emitState("open");
      this.ping();
      this.pingTimer = setInterval(() => this.ping(), this.pingMs);
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      this.lastHeard = performance.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the protocol is JSON text; anything else is not for us
      }
      this.dispatchEvent(new CustomEvent("message", { detail: message }));
    });
    socket.addEventListener("close", () => {
      if (socket !== this.socket) return;
      this.drop();
      if (!this.stopped) this.retry();
    });
  }

  ping() {
    if (performance.now() - this.lastHeard > this.silenceMs) {
      this.socket?.close(); // the close handler above reconnects
      this.drop();
      if (!this.stopped) this.retry();
      return;
    }
    this.send({ type: "ping", t: localNow() });
  }

  drop() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket?.readyState === WebSocket.OPEN) socket.close();
    // closing one still connecting makes the browser log an error; let it open, then close it
    else if (socket?.readyState === WebSocket.CONNECTING) socket.addEventListener("open", () => socket.close());
  }

  retry() {
    const base = BACKOFF_SECS[Math.min(this.attempt, BACKOFF_SECS.length - 1)];
    const delay = base * (0.8 + Math.random() * 0.4);
    this.attempt += 1;
    this.emitState("waiting", delay);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay * 1000);
  }

  emitState(state, retryInSecs = null) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryInSecs } }));
  }
}
