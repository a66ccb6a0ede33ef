// The operator's renaming of a speaker: a speaker's label in the transcript opens this form,
// prefilled with what the session calls them; Save (or Enter) sends the name (PATCH), Escape or
// Cancel closes it. Every page in the session then gets the new names (a speakers message);
// this one takes them from the answer, which an ended session's page has no socket for.
// Only an operator's page has the form: the template leaves it out of a listener's.

import { api } from "./api.js";
import { errorNotice, notice } from "./format.js";
import { defaultName } from "./subtitles.js";

export class SpeakerRename {
  // onSession(session): the server's answer; signInUrl: where a 401's "Sign in" link goes.
  constructor({ onSession, signInUrl }) {
    this.onSession = onSession;
    this.signInUrl = signInUrl;
    this.form = document.getElementById("speaker-rename");
    this.label = document.getElementById("speaker-rename-label");
    this.input = document.getElementById("speaker-rename-name");
    this.help = document.getElementById("speaker-rename-help");
    this.error = document.getElementById("speaker-rename-error");
    this.saveButton = document.getElementById("speaker-rename-save");
    this.sessionId = null;
    this.speaker = null;
    this.opener = null; // the label that opened the form: focus goes back to it

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.form.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      this.close();
    });
    document.getElementById("speaker-rename-cancel").addEventListener("click", () => this.close());
  }

  open(sessionId, speaker, name, opener) {
    this.sessionId = sessionId;
    this.speaker = speaker;
    this.opener = opener;
    this.label.textContent = `Name for ${defaultName(speaker)}`;
    this.help.textContent = `Everyone in the session sees it at once; left empty, the name is ${defaultName(speaker)} again.`;
    this.input.value = name;
    this.showError(null);
    this.form.hidden = false;
    this.input.focus();
    this.input.select();
  }

  // refocus: false where the player moves on (another session) and the label goes with it.
  close({ refocus = true } = {}) {
    if (this.form.hidden) return;
    this.form.hidden = true;
    this.showError(null);
    if (refocus && this.opener?.isConnected) this.opener.focus();
    this.opener = null;
  }

  async save() {
    const name = this.input.value.trim();
    // "Speaker N" is what a speaker without a name is called: keep no name for them
    const value = name && name !== defaultName(this.speaker) ? name : null;
    this.saveButton.disabled = true;
    try {
      this.onSession(await api.renameSpeakers(this.sessionId, { [this.speaker]: value }));
      this.close();
    } catch (error) {
      this.showError(error);
      this.input.focus();
    } finally {
      this.saveButton.disabled = false;
    }
  }

  showError(error) {
    if (error) errorNotice(this.error, error, this.signInUrl);
    else notice(this.error, "");
    if (error) this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
  }
}
