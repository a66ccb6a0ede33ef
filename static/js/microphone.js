// The operator's microphone: the device (getUserMedia), its input level (WebAudio), and the
// WebRTC peer that sends it to a session. The page offers (one sendonly audio track), the
// server answers ("publish" / "publish-answer" on the session's socket), and our ICE
// candidates trickle as "ice-candidate" messages with target "publish".
// Every failure becomes a sentence (microphoneError).

const LEVEL_FLOOR_DB = -60; // the meter's empty end; 0 dBFS is its full end

export class Microphone extends EventTarget {
  constructor() {
    super();
    this.stream = null;
    this.context = null;
    this.analyser = null;
    this.samples = null;
    this.deviceId = "";
  }

  get track() {
    return this.stream?.getAudioTracks()[0] ?? null;
  }

  get live() {
    return this.track?.readyState === "live";
  }

  get label() {
    return this.track?.label ?? "";
  }

  // Ask for the device (the browser asks the operator the first time); throws a sentence.
  async open(deviceId = this.deviceId) {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error(
        "This browser gives a page the microphone only over HTTPS (or from localhost): open the page at its https:// address.",
      );
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: constraints(deviceId), video: false });
    } catch (error) {
      throw new Error(microphoneError(error));
    }
    this.close({ quiet: true });
    this.stream = stream;
    this.deviceId = this.track.getSettings().deviceId ?? deviceId;
    // unplugged, or taken away by the browser: say so, as for any other failure
    this.track.addEventListener("ended", () => {
      if (this.stream === stream) {
        this.close();
        this.dispatchEvent(new CustomEvent("error", { detail: "The microphone stopped: it was unplugged or the browser took it back." }));
      }
    });
    this.listen(stream);
    this.dispatchEvent(new Event("open"));
  }

  listen(stream) {
    this.context = new AudioContext();
    this.context.resume().catch(() => {}); // created in a click, it runs; if not, the next click resumes it
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.context.createMediaStreamSource(stream).connect(this.analyser); // not to the speakers: no feedback
  }

  resume() {
    if (this.context?.state === "suspended") this.context.resume().catch(() => {});
  }

  // The input level now, 0 (silence, or -60 dBFS) to 1 (full scale), whether muted or not.
  level() {
    if (!this.analyser) return 0;
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const s of this.samples) sum += s * s;
    const rms = Math.sqrt(sum / this.samples.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : LEVEL_FLOOR_DB;
    return Math.max(0, Math.min(1, (db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB));
  }

  get muted() {
    return this.track ? !this.track.enabled : false;
  }

  // Muted, the track sends silence: the session and its listeners go on, hearing nothing.
  set muted(value) {
    if (this.track) this.track.enabled = !value;
    this.dispatchEvent(new Event("mute"));
  }

  close({ quiet = false } = {}) {
    const had = this.stream !== null;
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.analyser = null;
    this.context?.close().catch(() => {});
    this.context = null;
    if (had && !quiet) this.dispatchEvent(new Event("close"));
  }
}

// The browser's noise suppression smears the consonants a speech model needs (it was trained on
// noisy speech); echo cancellation and gain control stay as the browser has them.
function constraints(deviceId) {
  const audio = { noiseSuppression: false };
  if (deviceId) audio.deviceId = { exact: deviceId };
  return audio;
}

// The audio inputs, once the operator has allowed one (before that their names are hidden).
export async function microphones() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((d) => d.kind === "audioinput" && d.deviceId);
}

export function microphoneError(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return "The browser was not allowed to use the microphone: allow it for this site (the icon in the address bar), then press Allow microphone.";
    case "NotFoundError":
    case "DevicesNotFoundError":
      return "No microphone was found: connect one, then press Allow microphone.";
    case "NotReadableError":
    case "TrackStartError":
      return "The microphone could not be opened: another program may be using it.";
    case "OverconstrainedError":
      return "The chosen microphone is no longer there: choose another one.";
    case "SecurityError":
      return "The browser refuses the microphone to this page: it must be opened over HTTPS (or from localhost).";
    default:
      return `The microphone could not be opened: ${error?.message || error}.`;
  }
}

// Shows a microphone's level in a <meter>, about ten times a second (no inline style: the CSP).
export class LevelMeter {
  constructor(meter, microphone) {
    this.meter = meter;
    this.microphone = microphone;
    this.timer = null;
  }

  start() {
    this.stop();
    this.timer = setInterval(() => {
      const level = this.microphone.level();
      this.meter.value = level;
      this.meter.dataset.level = level.toFixed(2); // what the browser tests read
    }, 100);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.meter.value = 0;
    this.meter.dataset.level = "0.00";
  }
}

// The peer that sends the microphone to the server. Emits "statechange".
export class MicPublisher extends EventTarget {
  constructor(iceServers, send) {
    super();
    this.iceServers = iceServers || [];
    this.send = send;
    this.pc = null;
  }

  get state() {
    return this.pc?.connectionState ?? "closed";
  }

  // A fresh peer and its offer, sent as "publish"; the answer comes as "publish-answer".
  async offer(track) {
    this.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    const early = []; // candidates found before the offer was sent follow it
    let offered = false;
    pc.addTransceiver(track, { direction: "sendonly" });
    pc.addEventListener("icecandidate", (event) => {
      if (!event.candidate || pc !== this.pc) return;
      const message = { type: "ice-candidate", target: "publish", candidate: event.candidate.toJSON() };
      if (offered) this.send(message);
      else early.push(message);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) this.dispatchEvent(new Event("statechange"));
    });
    await pc.setLocalDescription(await pc.createOffer());
    if (pc !== this.pc) return; // closed meanwhile
    this.send({ type: "publish", sdp: pc.localDescription.sdp });
    offered = true;
    for (const message of early) this.send(message);
    this.dispatchEvent(new Event("statechange"));
  }

  async answer(sdp) {
    if (!this.pc || this.pc.signalingState !== "have-local-offer") return; // an answer to a peer closed since
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  close() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
      this.dispatchEvent(new Event("statechange"));
    }
  }
}
