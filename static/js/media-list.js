// The upload tab's table of recordings, each with a Delete button (asks once more
// before deleting; the server refuses while a live session plays the file, and says so).

import { ApiError } from "./api.js";
import { duration, notice, originalSize } from "./format.js";

const CONFIRM_MS = 5000;

export class MediaList {
  constructor(library) {
    this.library = library;
    this.table = document.getElementById("media-table");
    this.rows = document.getElementById("media-rows");
    this.empty = document.getElementById("media-empty");
    this.error = document.getElementById("media-error");
    library.addEventListener("change", () => this.render());
  }

  render() {
    const { items } = this.library;
    this.table.hidden = items.length === 0;
    this.empty.hidden = items.length > 0;
    this.rows.replaceChildren(...items.map((media) => this.row(media)));
  }

  row(media) {
    const tr = document.createElement("tr");
    tr.dataset.mediaId = media.id;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = media.filename;
    if (media.missing) {
      const badge = document.createElement("span");
      badge.className = "badge missing";
      badge.textContent = "file missing";
      name.append(" ", badge);
    }
    const format = cell(media.format || "–");
    format.className = "format";
    tr.append(name, cell(duration(media.duration_secs)), cell(originalSize(media)), format);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button danger small";
    button.textContent = "Delete";
    button.setAttribute("aria-label", `Delete ${media.filename}`);
    button.addEventListener("click", () => this.onDelete(media, button));
    const actions = cell("");
    actions.append(button);
    tr.append(actions);
    return tr;
  }

  async onDelete(media, button) {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = "Really delete?";
      button.setAttribute("aria-label", `Really delete ${media.filename}?`);
      setTimeout(() => {
        if (!button.isConnected) return;
        button.dataset.confirm = "";
        button.textContent = "Delete";
        button.setAttribute("aria-label", `Delete ${media.filename}`);
      }, CONFIRM_MS);
      return;
    }
    button.disabled = true;
    notice(this.error, "");
    try {
      await this.library.remove(media.id);
    } catch (error) {
      button.disabled = false;
      notice(this.error, error instanceof ApiError ? error.message : String(error));
    }
  }
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}
