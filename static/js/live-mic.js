// The operator's microphone in the player, for the session this page went live with: it is
// sent on every (re)join of the session's socket, re-sent when its peer drops, muted on
// request, and let go when the session's input ends. A microphone session this page does not
// send to (the page was reloaded, or opened elsewhere) offers "Send my microphone".
// Refusals and failures are shown as the server's (or the browser's) sentence.
// Only an operator's page has these elements.

import { LIVE_STATES, notice } from "./format.js";
import { LevelMeter, MicPublisher, Microphone } from "./microphone.js";

const RETRY_SECS = [1, 2, 4, 8];

export class LiveMic {
  // send(message): on the session's socket; isJoined(): the socket has joined the session;
  // onError(sentence); onOwnAudio(true|false): mute the player's audio (no feedback)
  constructor(iceServers, { send, isJoined, onError, onOwnAudio }) {
    this.isJoined = isJoined;
    this.onError = onError;
    this.onOwnAudio = onOwnAudio;
    this.group = document.getElementById("player-mic");
    this.on = document.getElementById("player-mic-on");
    this.sendButton = document.getElementById("player-mic-send");
    this.note = document.getElementById("player-mic-note");
    this.status = document.getElementById("player-mic-status");
    this.meterElement = document.getElementById("player-mic-level");
    this.muteButton = document.getElementById("player-mic-mute");
    this.publisher = new MicPublisher(iceServers, send);
    this.publisher.addEventListener("statechange", () => this.onPeerState());
    this.microphone = null;
    this.meter = null;
    this.sessionId = null;
    this.state = "idle"; // idle | starting | connecting | live | waiting | ended
    this.lastState = "starting"; // the session's
    this.sent = false; // this page's microphone reached the session once: a refusal now is a reconnect's
    this.retry = { attempt: 0, timer: null };
    this.owned = false; // the microphone was opened here (Send my microphone), not by the create form
    this.session = null; // the one the player shows
    this.muteButton.addEventListener("click", () => this.toggleMute());
    this.sendButton.addEventListener("click", () => this.sendMine());
  }

  get active() {
    return this.microphone !== null;
  }

  // This page sends `microphone` to session `id` (the player has just joined it).
  attach(id, microphone, { owned = false } = {}) {
    this.detach();
    this.sessionId = id;
    this.microphone = microphone;
    this.owned = owned;
    this.sent = false;
    this.meter = new LevelMeter(this.meterElement, microphone);
    this.meter.start();
    this.onMicClosed = () => this.finish("The microphone is off.");
    microphone.addEventListener("close", this.onMicClosed);
    this.group.hidden = false;
    this.on.hidden = false;
    this.note.hidden = false;
    this.sendButton.hidden = true;
    this.showMute();
    this.show("starting", "Waiting for the session…");
    this.onOwnAudio(true); // the operator does not hear their own voice back (feedback), unless they unmute
  }

  detach() {
    this.stopRetry();
    this.publisher.close();
    this.meter?.stop();
    this.meter = null;
    if (this.microphone && this.onMicClosed) this.microphone.removeEventListener("close", this.onMicClosed);
    if (this.owned) this.microphone?.close();
    this.microphone = null;
    this.owned = false;
    this.sessionId = null;
    this.group.hidden = true;
    this.state = "idle";
  }

  // The session the player shows: a microphone session this page does not send to gets the offer to.
  showSession(session) {
    this.session = session;
    if (this.active) return;
    const offer = session.source === "microphone" && session.live_input === true && LIVE_STATES.has(session.state);
    this.sendButton.hidden = !offer;
    if (offer) {
      this.group.hidden = false;
      this.on.hidden = true;
      this.note.hidden = true;
      if (this.state !== "ended") this.show("idle", "This session takes a microphone: send yours to go on air with it (one at a time).");
    } else if (this.state !== "ended") {
      this.group.hidden = true;
    }
  }

  async sendMine() {
    const session = this.session;
    const microphone = new Microphone();
    this.sendButton.disabled = true;
    try {
      await microphone.open();
    } catch (error) {
      this.onError(error.message);
      return;
    } finally {
      this.sendButton.disabled = false;
    }
    if (this.session?.id !== session.id) {
      microphone.close({ quiet: true }); // the player moved on meanwhile
      return;
    }
    this.attach(session.id, microphone, { owned: true });
    if (this.isJoined()) this.onJoined(session);
  }

  // --- the socket's part ------------------------------------------------------------------------

  // The socket has (re)joined: send the microphone while the session's input is open.
  onJoined(session) {
    if (!this.active) return;
    this.lastState = session.state;
    if (!session.live_input) {
      this.finish("The session's input has ended: your microphone is off.");
      return;
    }
    this.publish();
  }

  // The socket dropped: the peer goes with it; the player reconnects and onJoined sends it again.
  onSocketLost() {
    if (!this.active || this.state === "ended") return;
    this.stopRetry();
    this.publisher.close();
    this.show("waiting", "The connection dropped: your microphone is sent again as soon as it is back…");
  }

  onClock(clock) {
    if (!this.active) return;
    this.lastState = clock.state;
    if (clock.live_input === false) this.finish("The session's input has ended: your microphone is off.");
    else if (this.publisher.state === "connected") this.showLive(clock.state);
  }

  // The microphone's messages; true when the message was one of them.
  onMessage(message) {
    if (message.type === "publish-answer") {
      if (this.active) {
        this.publisher.answer(message.sdp).catch((error) => this.failed(`The microphone's connection could not start: ${error.message}`));
      }
      return true;
    }
    if (message.type === "publish-end") {
      if (!this.active) return true;
      if (message.reason) {
        this.publisher.close();
        this.show("waiting", `${message.reason}`);
        this.later(() => this.publish());
      } else {
        this.finish("The session's input has ended: your microphone is off.");
      }
      return true;
    }
    if (message.type === "error" && message.about === "publish") {
      if (!this.active) return true;
      this.publisher.close();
      if (message.retry && this.sent) {
        // our own previous connection still holds it; it lets go within seconds
        this.show("waiting", "Waiting for the previous connection to let go of the microphone…");
        this.later(() => this.publish());
      } else {
        this.show("ended", "Your microphone is not sent.");
        this.onError(message.message);
      }
      return true;
    }
    return false;
  }

  // --- sending --------------------------------------------------------------------------------

  publish() {
    this.stopRetry();
    if (!this.microphone?.live) {
      this.finish("The microphone is off.");
      return;
    }
    this.show("connecting", "Connecting your microphone…");
    this.publisher.offer(this.microphone.track).catch((error) => this.failed(`The microphone could not be sent: ${error.message}`));
  }

  onPeerState() {
    if (!this.active) return;
    const state = this.publisher.state;
    if (state === "connected") {
      this.sent = true;
      this.retry.attempt = 0;
      this.showLive(this.lastState);
    } else if (state === "failed") {
      this.publisher.close();
      this.show("waiting", "The microphone's connection failed: sending it again…");
      this.later(() => this.publish());
    }
  }

  failed(sentence) {
    this.publisher.close();
    this.show("ended", "Your microphone is not sent.");
    this.onError(sentence);
  }

  // The input is over: let go of the device too (the browser's recording light goes off).
  finish(text) {
    if (!this.active) return;
    this.stopRetry();
    this.publisher.close();
    this.meter?.stop();
    const microphone = this.microphone;
    microphone.removeEventListener("close", this.onMicClosed);
    microphone.close();
    this.show("ended", text);
    this.note.hidden = true;
    this.muteButton.disabled = true;
    this.microphone = null;
  }

  later(action) {
    clearTimeout(this.retry.timer);
    const delay = RETRY_SECS[Math.min(this.retry.attempt, RETRY_SECS.length - 1)];
    this.retry.attempt += 1;
    this.retry.timer = setTimeout(action, delay * 1000);
  }

  stopRetry() {
    clearTimeout(this.retry.timer);
    this.retry.timer = null;
  }

  // --- what the operator sees -------------------------------------------------------------------

  toggleMute() {
    if (!this.microphone) return;
    this.microphone.muted = !this.microphone.muted;
    this.showMute();
    if (this.publisher.state === "connected") this.showLive(this.lastState);
  }

  showMute() {
    const muted = Boolean(this.microphone?.muted);
    this.muteButton.disabled = !this.microphone;
    this.muteButton.setAttribute("aria-pressed", String(muted));
  }

  showLive(sessionState) {
    if (this.microphone?.muted) this.show("live", "Muted: listeners hear silence until you unmute.");
    else if (sessionState === "starting") this.show("live", "Connected: your microphone goes on air when the model is ready…");
    else if (sessionState === "paused") this.show("live", "The session is paused: your microphone is not recorded now.");
    else this.show("live", "On air: listeners hear your microphone.");
  }

  show(state, text) {
    this.state = state;
    this.group.dataset.state = state;
    notice(this.status, text);
  }
}
