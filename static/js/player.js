// The player: joins a session over the WebSocket, takes its audio over WebRTC, shows the
// subtitles in time with that audio, and keeps all of it going across reconnects.
// A session that has already ended shows its transcript from the REST API instead.
// A share link's key (?session=ID&key=KEY) goes with every call about the session.
// An operator who went live from this page also sends their microphone on this socket (live-mic.js),
// and renames the session's speakers from their labels in the transcript (speakers.js).

import { api, withKey } from "./api.js";
import { SessionClock } from "./clock.js";
import { Connection } from "./connection.js";
import { Downloads } from "./downloads.js";
import { LiveMic } from "./live-mic.js";
import { LIVE_STATES, STATE_LABELS, duration, errorNotice, notice } from "./format.js";
import { AudioLink } from "./rtc.js";
import { SessionControls } from "./session-controls.js";
import { SpeakerRename } from "./speakers.js";
import { Subtitles } from "./subtitles.js";

const TICK_MS = 100;
const STATS_MS = 1000;
const AUDIO_RETRY_SECS = [1, 2, 4, 8, 15];
const DEFAULT_JITTER_BUFFER_SECS = 0.06; // until the receiver has measured its own

export class Player {
  constructor(config, { operator = false, onLeave, onCount = null } = {}) {
    this.config = config;
    this.onLeave = onLeave;
    this.onCount = onCount; // (session id, listeners): what this socket hears, for the session's card
    this.section = document.getElementById("player");
    this.title = document.getElementById("player-title");
    this.sub = document.getElementById("player-sub");
    this.stateBadge = document.getElementById("player-state");
    this.connection = document.getElementById("player-connection");
    this.error = document.getElementById("player-error");
    this.notice = document.getElementById("player-notice");
    this.progress = document.getElementById("player-progress");
    this.time = document.getElementById("player-time");
    this.audioElement = document.getElementById("player-audio");
    this.playButton = document.getElementById("player-play");
    this.muteButton = document.getElementById("player-mute");
    this.volume = document.getElementById("player-volume");
    this.downloads = new Downloads(this.section);
    this.controls = operator
      ? new SessionControls({
          onSession: (session) => {
            notice(this.error, "");
            this.showSession(session);
          },
          onError: (error) => this.showError(error),
        })
      : null;

    this.mic = operator
      ? new LiveMic(config.iceServers, {
          send: (message) => this.socket?.send(message),
          isJoined: () => this.joined,
          onError: (sentence) => notice(this.error, sentence),
          onOwnAudio: (mute) => this.muteOwnAudio(mute),
        })
      : null;
    this.mutedForMic = false;

    this.rename = operator
      ? new SpeakerRename({
          // the player may have moved on to another session while the name was on its way
          onSession: (session) => {
            if (session.id === this.sessionId) this.showSession(session);
          },
          signInUrl: config.signInUrl,
        })
      : null;

    this.clock = new SessionClock();
    this.subtitles = new Subtitles(() => this.playout(), {
      onRename: this.rename
        ? (speaker, label) => this.rename.open(this.sessionId, speaker, this.subtitles.speakerName(speaker), label)
        : null,
    });
    this.audio = new AudioLink(this.audioElement, config.iceServers, (message) => this.socket?.send(message));
    this.audio.addEventListener("track", () => this.play());
    this.audio.addEventListener("statechange", () => this.onAudioState());
    this.socket = null;
    this.session = null;
    this.key = null; // the share link's, if the page was opened through one
    this.joined = false; // this socket has its session_info (the server accepted the join)
    this.joinedOnce = false; // some socket had: closes from now on are reconnects
    this.delaySecs = null; // network + jitter buffer: how far the listener's ear is behind the server
    this.ticker = null;
    this.statsTimer = null;
    this.audioRetry = { attempt: 0, timer: null };
    this.wantAudio = true; // the listener's choice: the audio plays (from its first packet) until they pause it
    this.audioStarting = false; // a play() is under way: a click now would undo it, and is ignored
    this.playAgain = false; // a new track came while it was: play that one once it is over

    this.playButton.addEventListener("click", () => this.onPlayClick());
    this.muteButton.addEventListener("click", () => {
      this.audioElement.muted = !this.audioElement.muted;
      this.muteButton.setAttribute("aria-pressed", String(this.audioElement.muted));
    });
    this.volume.addEventListener("input", () => (this.audioElement.volume = Number(this.volume.value)));
    document.getElementById("player-leave").addEventListener("click", () => this.leave());
  }

  get sessionId() {
    return this.session?.id ?? null;
  }

  // --- joining and leaving ---------------------------------------------------------------------

  // `microphone` (an operator's, open): this page sends it to the session, which takes a microphone.
  async join(id, key = null, { microphone = null } = {}) {
    if (this.sessionId === id && this.socket) {
      this.section.scrollIntoView({ block: "start" });
      this.title.focus(); // already listening: nothing to restart
      return;
    }
    this.stop();
    this.session = { id };
    this.key = key;
    this.wantAudio = true;
    this.showPlayButton();
    this.joined = this.joinedOnce = false;
    this.section.hidden = false;
    notice(this.error, "");
    notice(this.notice, "");
    this.title.textContent = `Session ${id}`;
    this.sub.textContent = "";
    this.subtitles.clear();
    this.subtitles.setSpeakers({}); // until the session says what it calls them
    this.rename?.close({ refocus: false });
    this.clock.reset();
    this.setIndicator("connecting", "Connecting…");
    this.downloads.reset(id, key);
    this.controls?.reset(id);
    if (microphone) this.mic?.attach(id, microphone);
    // the address stays the share link: reloading it, or passing it on, joins again
    history.replaceState(null, "", `${location.pathname}${withKey(`?session=${id}`, key)}${location.hash}`);
    this.section.scrollIntoView({ block: "start" });
    this.title.focus();
    this.ticker = setInterval(() => this.tick(), TICK_MS);

    let session;
    try {
      session = await api.session(id, key);
    } catch (error) {
      if (this.sessionId === id) this.fail(error);
      return;
    }
    if (this.sessionId !== id) return; // left, or joined another meanwhile
    this.showSession(session);
    if (LIVE_STATES.has(session.state)) this.connect(id);
    else await this.showTranscript(session);
  }

  leave() {
    this.stop();
    this.rename?.close({ refocus: false });
    this.session = null;
    this.key = null;
    this.section.hidden = true;
    history.replaceState(null, "", `${location.pathname}${location.hash}`);
    this.onLeave?.();
  }

  stop() {
    clearInterval(this.ticker);
    clearInterval(this.statsTimer);
    clearTimeout(this.audioRetry.timer);
    this.ticker = this.statsTimer = null;
    this.socket?.close();
    this.socket = null;
    this.audio.close();
    this.audioElement.srcObject = null;
    this.delaySecs = null;
    this.mic?.detach();
    this.muteOwnAudio(false);
  }

  // The operator's own microphone is not played back to them (it would feed back), unless they unmute.
  muteOwnAudio(mute) {
    if (mute === this.mutedForMic) return;
    this.mutedForMic = mute;
    this.audioElement.muted = mute;
    this.muteButton.setAttribute("aria-pressed", String(mute));
  }

  connect(id) {
    const socket = new Connection(withKey(webSocketUrl(this.config.wsHost, id), this.key));
    this.socket = socket;
    socket.addEventListener("state", (event) => this.onSocketState(event.detail));
    socket.addEventListener("message", (event) => this.onMessage(event.detail));
    socket.open();
    this.statsTimer = setInterval(() => this.readStats(), STATS_MS);
  }

  async showTranscript(session) {
    this.setIndicator("ended", "Ended");
    this.clock.setClock(session.clock);
    try {
      this.subtitles.load(await api.transcript(session.id, this.key));
    } catch (error) {
      this.showError(error);
    }
  }

  fail(error) {
    this.stop();
    this.showError(error);
    this.setIndicator("ended", "Not connected");
  }

  // The server's sentence; "sign in first" gets a link to the sign-in page.
  showError(error) {
    errorNotice(this.error, error, this.config.signInUrl);
  }

  // --- the socket ------------------------------------------------------------------------------

  onSocketState({ state, retryInSecs }) {
    if (state === "connecting") this.setIndicator("connecting", this.joinedOnce ? "Reconnecting…" : "Connecting…");
    if (state === "open") this.setIndicator("connecting", "Joining…");
    if (state === "waiting") {
      this.joined = false;
      this.audio.close();
      this.mic?.onSocketLost();
      this.subtitles.clearPartial();
      this.setIndicator("waiting", `Connection lost; reconnecting in ${retryInSecs.toFixed(1)} s…`);
    }
  }

  onMessage(message) {
    if (this.mic?.onMessage(message)) return undefined;
    switch (message.type) {
      case "session_info":
        return this.onSessionInfo(message);
      case "subtitle":
        // finals the server replays on join were said before this page listened: no delay sample
        return this.subtitles.add(message, { history: Boolean(message.replay) });
      case "status":
        return this.onStatus(message);
      case "speakers":
        return this.showSession({ ...this.session, speaker_names: message.names });
      case "clock":
        this.clock.setClock(message);
        this.mic?.onClock(message);
        return this.showSession({ ...this.session, state: message.state, live_input: message.live_input, clock: message });
      case "offer":
        return this.audio.answer(message.sdp).catch((error) => notice(this.error, `The audio could not start: ${error.message}`));
      case "pong":
        return this.clock.onPong(message.t, message.server_time);
      case "end":
        return this.onEnd(message);
      case "transcript":
        return this.onTranscript(message);
      case "error":
        return this.onServerError(message.message);
      default:
        return undefined; // a newer server's message this page does not know yet
    }
  }

  onSessionInfo({ session, server_time: serverTime }) {
    this.joined = true;
    this.joinedOnce = true;
    this.socket.resetBackoff();
    notice(this.error, "");
    this.clock.setClock(session.clock);
    this.clock.guessOffset(serverTime);
    this.showSession(session);
    this.onCount?.(session.id, session.client_count);
    this.requestAudio();
    this.mic?.onJoined(session);
    this.updateIndicator();
  }

  onStatus(status) {
    const fields = ["state", "progress_secs", "duration_secs", "client_count", "degraded"];
    const update = Object.fromEntries(fields.filter((f) => status[f] !== undefined).map((f) => [f, status[f]]));
    this.showSession({ ...this.session, ...update });
    if (status.client_count !== undefined) this.onCount?.(this.sessionId, status.client_count);
    const behind = status.lag_secs >= 1 ? ` The transcription is ${status.lag_secs.toFixed(1)} s behind the audio.` : "";
    const skipped = status.skipped_secs > 0 ? ` ${status.skipped_secs.toFixed(1)} s of audio were skipped to catch up.` : "";
    notice(this.notice, status.degraded ? `The server is falling behind on this session.${behind}${skipped}` : "");
  }

  onEnd({ state, reason }) {
    this.joined = false; // the audio plays out what it has; tick() closes it at the end
    this.mic?.onClock({ state, live_input: false });
    this.showSession({ ...this.session, state, live_input: false });
    notice(this.notice, reason || "");
    // a completed session's final transcript is announced on this socket: keep it open until then
    if (state === "completed") this.downloads.expectFinal();
    else this.closeSocket();
    clearInterval(this.statsTimer);
    clearTimeout(this.audioRetry.timer);
    this.setIndicator("ended", "Ended");
  }

  onTranscript(message) {
    this.downloads.onTranscript(message);
    if (!this.joined) this.closeSocket(); // the session has ended: this was the last thing to wait for
  }

  closeSocket() {
    this.socket?.close();
    this.socket = null;
  }

  onServerError(message) {
    notice(this.error, message);
    if (!this.joined) {
      // joining was refused (no such session, or it ended meanwhile): no point retrying
      this.socket?.close();
      this.socket = null;
      clearInterval(this.statsTimer);
      this.setIndicator("ended", "Not connected");
      if (this.session?.id) this.refreshEnded(this.session.id);
    }
  }

  async refreshEnded(id) {
    try {
      const session = await api.session(id, this.key);
      if (this.sessionId !== id || LIVE_STATES.has(session.state)) return;
      this.showSession(session);
      await this.showTranscript(session);
    } catch {
      // the sentence the server sent is already shown
    }
  }

  // --- audio -----------------------------------------------------------------------------------

  requestAudio() {
    clearTimeout(this.audioRetry.timer);
    if (!this.joined || !LIVE_STATES.has(this.session?.state)) return;
    this.audio.close();
    this.socket?.send({ type: "ready" });
  }

  onAudioState() {
    const state = this.audio.state;
    if (state === "connected") {
      this.audioRetry.attempt = 0;
      notice(this.error, "");
    }
    if (state === "failed" && this.joined) {
      // ask for a fresh offer, a little later each time
      const delay = AUDIO_RETRY_SECS[Math.min(this.audioRetry.attempt, AUDIO_RETRY_SECS.length - 1)];
      this.audioRetry.attempt += 1;
      this.audio.close();
      clearTimeout(this.audioRetry.timer);
      this.audioRetry.timer = setTimeout(() => this.requestAudio(), delay * 1000);
    }
    this.updateIndicator();
  }

  // The audio plays where the listener wants it and it has come; the button says what a click does.
  play() {
    if (this.audioStarting) {
      this.playAgain = true;
      return;
    }
    if (!this.wantAudio || !this.audioElement.srcObject) return;
    this.audioStarting = true;
    this.showPlayButton();
    this.audioElement
      .play()
      .then(
        () => notice(this.notice, ""),
        (error) => {
          if (error.name === "AbortError") return; // a new track replaced this one: playAgain plays it
          this.wantAudio = false;
          notice(this.notice, "The browser did not start the audio by itself: press Play audio to hear it.");
        },
      )
      .finally(() => {
        this.audioStarting = false;
        this.showPlayButton();
        if (this.playAgain) {
          this.playAgain = false;
          this.play();
        }
      });
  }

  onPlayClick() {
    if (this.audioStarting) return; // a click as the audio starts (autoplay) must not pause it again
    this.wantAudio = !this.wantAudio;
    if (this.wantAudio) this.play();
    else this.audioElement.pause();
    this.showPlayButton();
  }

  showPlayButton() {
    this.playButton.textContent = this.wantAudio ? "Pause audio" : "Play audio";
    if (this.audioStarting) this.playButton.setAttribute("aria-disabled", "true");
    else this.playButton.removeAttribute("aria-disabled");
  }

  async readStats() {
    let stats;
    try {
      stats = await this.audio.stats();
    } catch {
      return; // the peer closed while its stats were read
    }
    const network = stats?.networkSecs ?? (this.clock.rttMs != null ? this.clock.rttMs / 2000 : 0);
    const buffer = stats?.jitterBufferSecs ?? DEFAULT_JITTER_BUFFER_SECS;
    const delay = network + buffer;
    // smoothed: one second's jitter buffer mean moves by a few milliseconds
    this.delaySecs = this.delaySecs === null ? delay : this.delaySecs * 0.7 + delay * 0.3;
  }

  // --- time ------------------------------------------------------------------------------------

  // The recording position the listener hears now, or null while the clock is unknown.
  playout() {
    if (!this.clock.known) return null;
    const fallback = (this.clock.rttMs ?? 0) / 2000 + DEFAULT_JITTER_BUFFER_SECS;
    return this.clock.playout(this.delaySecs ?? fallback);
  }

  tick() {
    this.subtitles.tick();
    const total = this.clock.duration || this.session?.duration_secs || 0;
    const position = this.playout() ?? this.session?.progress_secs ?? 0;
    if (this.clock.live) {
      this.progress.removeAttribute("value"); // indeterminate: a live input has no end yet
      this.time.textContent = `${duration(position)} · live`;
    } else {
      this.progress.max = total || 1;
      this.progress.value = Math.min(position, total);
      this.time.textContent = `${duration(position)} / ${duration(total)}`;
    }
    if (this.clock.ended && position >= (this.clock.clock.ended_position_secs ?? total)) {
      this.subtitles.flush();
      this.subtitles.end();
      this.audio.close();
    }
  }

  // --- the session's state --------------------------------------------------------------------

  // The session's listeners as the Browse card heard them (a count push): the page says one number.
  showCount(id, count) {
    if (id !== this.sessionId || this.session.state === undefined || this.session.client_count === count) return;
    this.showSession({ client_count: count });
  }

  showSession(session) {
    this.session = { ...this.session, ...session };
    const s = this.session;
    if (s.media_filename) this.title.textContent = s.media_filename;
    const language = s.target_language ? `${s.language} → ${s.target_language}` : s.language;
    const live = LIVE_STATES.has(s.state);
    // nobody listens to an ended session (its card shows no count either)
    const listeners = live && s.client_count != null ? `${s.client_count} listening` : "";
    this.sub.textContent = [`Session ${s.id}`, s.model_name, language, s.preset?.replace(/_/g, " "), listeners]
      .filter(Boolean)
      .join(" · ");
    this.downloads.show(s);
    this.stateBadge.textContent = STATE_LABELS[s.state] ?? s.state ?? "";
    this.stateBadge.dataset.state = s.state ?? "";
    this.controls?.show(s);
    this.mic?.showSession(s);
    this.subtitles.setSpeakers(s.speaker_names, s.diarize !== false);
    this.playButton.disabled = this.muteButton.disabled = this.volume.disabled = !live;
  }

  // --- the connection indicator ----------------------------------------------------------------

  updateIndicator() {
    if (!this.joined) return;
    const audio = this.audio.state;
    if (audio === "connected") this.setIndicator("live", "Connected: audio and subtitles");
    else if (audio === "closed" || audio === "failed") this.setIndicator("partial", "Connected: subtitles only, audio reconnecting…");
    else this.setIndicator("partial", "Connected: audio connecting…");
  }

  setIndicator(state, text) {
    this.connection.dataset.state = state;
    this.connection.querySelector(".connection-text").textContent = text;
  }
}

function webSocketUrl(wsHost, id) {
  if (wsHost && /^wss?:\/\//.test(wsHost)) return `${wsHost.replace(/\/$/, "")}/ws/${id}`;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${wsHost || location.host}/ws/${id}`;
}
