// The operator's part of the player: pause, resume and stop the session, end a live source's
// input (the session then plays out what it received and completes), and its share link
// (the session's address with its key, which LISTEN_ACCESS=link needs). Only an operator's
// page has these elements: the template leaves them out of a listener's.

import { api } from "./api.js";
import { LIVE_STATES } from "./format.js";

export class SessionControls {
  // onSession(session): the server's answer to a button; onError(error): its refusal.
  constructor({ onSession, onError }) {
    this.onSession = onSession;
    this.onError = onError;
    this.sessionId = null;
    this.pauseButton = document.getElementById("player-pause");
    this.resumeButton = document.getElementById("player-resume");
    this.stopButton = document.getElementById("player-stop");
    this.endButton = document.getElementById("player-end");
    this.share = document.getElementById("player-share");
    this.shareUrl = document.getElementById("player-share-url");
    this.copyButton = document.getElementById("player-share-copy");
    this.copyNote = document.getElementById("player-share-note");

    this.pauseButton.addEventListener("click", () => this.operate(api.pauseSession));
    this.resumeButton.addEventListener("click", () => this.operate(api.resumeSession));
    this.stopButton.addEventListener("click", () => this.operate(api.stopSession));
    this.endButton.addEventListener("click", () => this.operate(api.endSession));
    this.copyButton.addEventListener("click", () => this.copy());
    this.shareUrl.addEventListener("focus", () => this.shareUrl.select());
  }

  // A new session in the player: no share link until the REST API gives one.
  reset(id) {
    this.sessionId = id;
    this.share.hidden = true;
    this.shareUrl.value = "";
    this.copyNote.textContent = "";
  }

  show(session) {
    const live = LIVE_STATES.has(session.state);
    this.pauseButton.hidden = session.state === "paused";
    this.pauseButton.disabled = session.state !== "running";
    this.resumeButton.hidden = session.state !== "paused";
    this.stopButton.disabled = !live;
    this.endButton.hidden = !session.live_input;
    // only the REST API's session has it (the socket's does not): keep the one we have
    if (typeof session.share_url === "string") {
      this.shareUrl.value = new URL(session.share_url, location.origin).href;
      this.share.hidden = false;
    }
  }

  async operate(call) {
    try {
      this.onSession(await call(this.sessionId));
    } catch (error) {
      this.onError(error);
    }
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.shareUrl.value);
      this.copyNote.textContent = "Copied: anyone with this link can listen.";
    } catch {
      // no clipboard (plain http from another host, or refused): the link is selected to copy by hand
      this.shareUrl.focus();
      this.shareUrl.select();
      this.copyNote.textContent = "The browser did not copy it: the link is selected, copy it from the box.";
    }
  }
}
