// The media library as the page knows it: one list shared by the upload tab's table and
// the create form's dropdown. Emits "change" (detail {items, selectId}) after every change,
// and names the recordings whose file is missing (MEDIA_DIR not mounted, a file removed by
// hand) in the browse tab's notice: their rows and sessions stay until the files are back.

import { api } from "./api.js";

export class MediaLibrary extends EventTarget {
  constructor() {
    super();
    this.items = [];
    this.missingNotice = document.getElementById("media-missing");
    this.missingList = document.getElementById("media-missing-list");
  }

  async refresh() {
    this.items = await api.media();
    this.changed();
  }

  // A new upload: list it, and ask the create form to select it.
  add(media) {
    this.items = [media, ...this.items.filter((item) => item.id !== media.id)];
    this.changed(media.id);
  }

  async remove(id) {
    await api.deleteMedia(id);
    this.items = this.items.filter((item) => item.id !== id);
    this.changed();
  }

  changed(selectId = null) {
    this.showMissing();
    this.dispatchEvent(new CustomEvent("change", { detail: { items: this.items, selectId } }));
  }

  showMissing() {
    const missing = this.items.filter((item) => item.missing);
    this.missingNotice.hidden = missing.length === 0;
    this.missingList.replaceChildren(
      ...missing.map((media) => {
        const li = document.createElement("li");
        li.dataset.mediaId = media.id;
        const label = document.createElement("span");
        label.className = "badge missing";
        label.textContent = "file missing";
        li.append(label, ` ${media.filename}`);
        return li;
      }),
    );
  }
}
