// The session's audio over WebRTC. The server offers (Opus, receive-only for us); we answer
// and trickle our ICE candidates over the socket. stats() reads what the playout estimate
// needs: how long audio waits in the jitter buffer and the network's one-way delay.

export class AudioLink extends EventTarget {
  constructor(audio, iceServers, send) {
    super();
    this.audio = audio;
    this.iceServers = iceServers || [];
    this.send = send;
    this.pc = null;
    this.previous = null; // the last inbound-rtp sample, for the recent jitter buffer delay
  }

  get state() {
    return this.pc?.connectionState ?? "closed";
  }

  async answer(sdp) {
    this.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    pc.addEventListener("track", (event) => {
      this.audio.srcObject = event.streams[0] ?? new MediaStream([event.track]);
      this.dispatchEvent(new Event("track"));
    });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate && pc === this.pc) this.send({ type: "ice-candidate", candidate: event.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) this.dispatchEvent(new Event("statechange"));
    });
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      await pc.setLocalDescription(await pc.createAnswer());
    } catch (error) {
      if (pc !== this.pc) return; // closed meanwhile (a reconnect): nothing went wrong
      throw error;
    }
    if (pc !== this.pc) return;
    this.send({ type: "answer", sdp: pc.localDescription.sdp });
    this.dispatchEvent(new Event("statechange"));
  }

  close() {
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
      this.dispatchEvent(new Event("statechange"));
    }
    this.previous = null;
  }

  // {packetsReceived, jitterBufferSecs, networkSecs}, or null without a peer.
  async stats() {
    const pc = this.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    let inbound = null;
    let pair = null;
    let selectedPairId = null;
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp" && entry.kind === "audio") inbound = entry;
      if (entry.type === "transport" && entry.selectedCandidatePairId) selectedPairId = entry.selectedCandidatePairId;
    });
    report.forEach((entry) => {
      if (entry.type !== "candidate-pair") return;
      if (selectedPairId ? entry.id === selectedPairId : entry.nominated && entry.state === "succeeded") pair = entry;
    });
    return {
      packetsReceived: inbound?.packetsReceived ?? 0,
      jitterBufferSecs: inbound ? this.jitterBuffer(inbound) : null,
      networkSecs: pair?.currentRoundTripTime != null ? pair.currentRoundTripTime / 2 : null,
    };
  }

  // Mean time a sample waited in the jitter buffer since the last call (the whole call's mean at first).
  jitterBuffer(inbound) {
    const delay = inbound.jitterBufferDelay ?? 0;
    const emitted = inbound.jitterBufferEmittedCount ?? 0;
    const previous = this.previous;
    this.previous = { delay, emitted };
    if (previous && emitted - previous.emitted > 0) return (delay - previous.delay) / (emitted - previous.emitted);
    return emitted > 0 ? delay / emitted : null;
  }
}
