// Small formatting helpers shared by the components.

export function duration(secs) {
  if (secs == null || !Number.isFinite(secs)) return "–";
  const total = Math.max(0, Math.floor(secs));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KB", "MB", "GB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 || value >= 100 ? 0 : 1)} ${units[unit]}`;
}

// A recording's size as it came in (the upload, not the wav it is stored as); rows from
// before the server kept that size show the stored wav's, and say so.
export function originalSize(media) {
  return media.original_size_bytes != null ? bytes(media.original_size_bytes) : `${bytes(media.size_bytes)} as wav`;
}

// "mp3, 0:06, 98.5 KB": what the upload message and the library say of a recording.
export function described(media) {
  return [media.format, duration(media.duration_secs), originalSize(media)].filter(Boolean).join(", ");
}

export function rate(bytesPerSecond) {
  return `${bytes(bytesPerSecond)}/s`;
}

export const STATE_LABELS = {
  starting: "Starting",
  running: "Live",
  paused: "Paused",
  completed: "Completed",
  stopped: "Stopped",
  error: "Error",
};

export const LIVE_STATES = new Set(["starting", "running", "paused"]);

// Show one message in a notice element (role=alert/status in the template), or hide it.
export function notice(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}

// The sign-in page, coming back to where the visitor is now (the session and its key included).
export function signInHref(signInUrl) {
  return `${signInUrl}?next=${encodeURIComponent(location.pathname + location.search)}`;
}

// The server's sentence for a failed call; where it asks for a sign-in (401), a link to do so.
export function errorNotice(element, error, signInUrl) {
  notice(element, error.message);
  if (error.status === 401 && signInUrl) {
    const link = document.createElement("a");
    link.href = signInHref(signInUrl);
    link.textContent = "Sign in";
    link.dataset.signIn = "";
    element.append(" ", link);
  }
}

// Text into an element, with its `backticked` parts (commands, file names) as <code>.
export function withCode(element, text) {
  const parts = (text || "").split(/`([^`]*)`/);
  element.replaceChildren(
    ...parts.map((part, i) => {
      if (i % 2 === 0) return part.replace(/`/g, ""); // an unpaired backtick is not shown
      const code = document.createElement("code");
      code.textContent = part;
      return code;
    }),
  );
}
