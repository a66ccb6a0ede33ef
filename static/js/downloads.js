// The transcript downloads of the player: says which version the links give and, once a
// completed session's final transcript (one offline pass after the session) exists, lets
// the listener choose between it and the live one.

import { transcriptUrl } from "./api.js";

const LABELS = {
  final: "Final transcript (offline pass)",
  live: "Live transcript, as shown",
};

export class Downloads {
  constructor(section) {
    this.links = [...section.querySelectorAll("a[data-format]")];
    this.select = document.getElementById("player-version");
    this.label = document.getElementById("player-version-label");
    this.note = document.getElementById("player-version-note");
    this.sessionId = null;
    this.key = null; // a share link's, which the transcript needs with LISTEN_ACCESS=link
    this.versions = ["live"];
    this.select.addEventListener("change", () => this.update());
  }

  // A new session in the player: only what the server says exists, the live version until then.
  reset(id, key = null) {
    this.sessionId = id;
    this.key = key;
    this.versions = ["live"];
    this.select.value = "final";
    this.setNote("");
    this.update();
  }

  // The session as the API gives it (its `transcripts` lists the versions there are).
  show(session) {
    if (!Array.isArray(session.transcripts)) return;
    const hadFinal = this.versions.includes("final");
    this.versions = session.transcripts;
    if (!hadFinal && this.versions.includes("final")) this.select.value = "final";
    this.update();
  }

  // The session completed: its final transcript is being made now.
  expectFinal() {
    if (!this.versions.includes("final")) this.setNote("The final transcript is being made…");
  }

  // The server's "transcript" event: a version is ready, or will not be made (with its reason).
  onTranscript({ version, ready, error }) {
    if (!ready) {
      this.setNote(error ? `No final transcript: ${error}` : "");
      return;
    }
    if (!this.versions.includes(version)) this.versions = [...this.versions, version];
    if (version === "final") this.select.value = "final";
    this.setNote(version === "final" ? "The final transcript is ready." : "");
    this.update();
  }

  get version() {
    return this.versions.length > 1 ? this.select.value : this.versions[0];
  }

  update() {
    const choice = this.versions.length > 1;
    this.select.hidden = !choice;
    this.label.hidden = choice;
    this.label.textContent = LABELS[this.versions[0]] ?? this.versions[0];
    const version = this.version;
    for (const link of this.links) {
      if (this.sessionId != null) link.href = transcriptUrl(this.sessionId, link.dataset.format, version, this.key);
      link.title = `${LABELS[version] ?? version}, ${link.dataset.format.toUpperCase()}`;
    }
  }

  setNote(text) {
    this.note.textContent = text;
    this.note.hidden = !text;
  }
}
