// The media library as the page knows it: one list shared by the upload tab's table and
// the create form's dropdown. Emits "change" (detail {items, selectId}) after every change.

import { api } from "./api.js";

export class MediaLibrary extends EventTarget {
  constructor() {
    super();
    this.items = [];
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
    this.dispatchEvent(new CustomEvent("change", { detail: { items: this.items, selectId } }));
  }
}
