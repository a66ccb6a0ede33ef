// Where the listener is in the recording.
//
// The server sends the audio for recording position p at server time
// started_at + paused time + p (the session clock). So what the listener hears now is what the
// server sent `delay` seconds ago, where delay = one-way network delay + jitter buffer delay:
//     playout position = session position at (server now − delay).
// Server now comes from ping/pong (offset = server_time − (t_send + rtt/2), taken from the
// exchange with the smallest round trip); the delay comes from the WebRTC stats (rtc.js).

const OFFSET_SAMPLES = 10;

export function localNow() {
  return performance.timeOrigin + performance.now(); // epoch ms, monotonic within the page
}

export class SessionClock {
  constructor() {
    this.reset();
  }

  reset() {
    this.clock = null;
    this.samples = []; // {rtt, offset} in ms
    this.offsetMs = null;
    this.lastPlayout = 0;
  }

  // A first guess before any pong: the server's time when it sent a message, ignoring the trip.
  guessOffset(serverTime) {
    if (this.samples.length === 0 && serverTime != null) this.offsetMs = serverTime * 1000 - localNow();
  }

  onPong(sentMs, serverTime) {
    const now = localNow();
    const rtt = now - sentMs;
    if (!(rtt >= 0) || serverTime == null) return;
    this.samples.push({ rtt, offset: serverTime * 1000 - (sentMs + rtt / 2) });
    if (this.samples.length > OFFSET_SAMPLES) this.samples.shift();
    const best = this.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
    this.offsetMs = best.offset;
    this.rttMs = best.rtt;
  }

  // The session's clock fields (session_info.session.clock, or a clock message).
  setClock(clock) {
    this.clock = {
      state: clock.state,
      started_at: clock.started_at,
      paused_at: clock.paused_at,
      paused_secs: clock.paused_secs || 0,
      duration_secs: clock.duration_secs || 0,
      ended_position_secs: clock.ended_position_secs,
      live_input: Boolean(clock.live_input), // a live source still sending: its length is not known yet
    };
  }

  get live() {
    return this.clock?.live_input === true;
  }

  get duration() {
    return this.clock?.duration_secs ?? 0;
  }

  get known() {
    return this.clock !== null && this.offsetMs !== null;
  }

  serverNow() {
    return (localNow() + (this.offsetMs ?? 0)) / 1000;
  }

  // The recording position the session clock gives at server time t (epoch seconds).
  positionAt(t) {
    const c = this.clock;
    if (!c || c.started_at == null) return 0;
    let position = t - c.started_at - c.paused_secs;
    if (c.paused_at != null) position = Math.min(position, c.paused_at - c.started_at - c.paused_secs);
    if (c.ended_position_secs != null) position = Math.min(position, c.ended_position_secs);
    return Math.max(0, Math.min(position, c.duration_secs || Infinity));
  }

  get ended() {
    return this.clock != null && ["completed", "stopped", "error"].includes(this.clock.state);
  }

  // Where the listener's ear is: the position `delaySecs` ago on the server; never goes back.
  playout(delaySecs) {
    const position = this.positionAt(this.serverNow() - delaySecs);
    this.lastPlayout = Math.max(this.lastPlayout, position);
    return this.lastPlayout;
  }
}
