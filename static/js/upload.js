// The upload form: file picker and drag-and-drop, a progress bar with percent and speed,
// the server's sentence on failure; a finished upload joins the library (and is selected
// in the create form).

import { uploadMedia } from "./api.js";
import { bytes, described, errorNotice, notice, rate } from "./format.js";

export class UploadForm {
  constructor(library, config) {
    this.library = library;
    this.signInUrl = config.signInUrl; // an operator whose sign-in has expired is told where to sign in again
    this.input = document.getElementById("upload-file");
    this.drop = document.getElementById("upload-drop");
    this.progress = document.getElementById("upload-progress");
    this.bar = document.getElementById("upload-bar");
    this.percent = document.getElementById("upload-percent");
    this.status = document.getElementById("upload-status");
    this.cancel = document.getElementById("upload-cancel");
    this.error = document.getElementById("upload-error");
    this.done = document.getElementById("upload-done");
    this.current = null;

    const extensions = config.acceptedExtensions.map((ext) => `.${ext}`);
    this.input.accept = extensions.join(",");
    document.getElementById("upload-types").textContent =
      `Audio or video with sound: ${config.acceptedExtensions.join(", ")}; up to ${config.maxUploadMb} MB.`;

    this.input.addEventListener("change", () => {
      if (this.input.files.length) this.start(this.input.files[0]);
    });
    this.cancel.addEventListener("click", () => this.current?.abort());
    for (const type of ["dragenter", "dragover"]) {
      this.drop.addEventListener(type, (event) => {
        event.preventDefault();
        this.drop.classList.add("dragging");
      });
    }
    this.drop.addEventListener("dragleave", () => this.drop.classList.remove("dragging"));
    this.drop.addEventListener("drop", (event) => {
      event.preventDefault();
      this.drop.classList.remove("dragging");
      const file = event.dataTransfer?.files?.[0];
      if (file) this.start(file);
    });
  }

  async start(file) {
    if (this.current) return; // one upload at a time; the input is disabled meanwhile
    notice(this.error, "");
    notice(this.done, "");
    this.input.disabled = true;
    this.progress.hidden = false;
    this.cancel.hidden = false;
    this.show(0, `Uploading ${file.name} (${bytes(file.size)})…`);
    let speed = "";
    this.current = uploadMedia(file, ({ loaded, total, bytesPerSecond }) => {
      speed = rate(bytesPerSecond);
      const percent = total ? Math.floor((loaded / total) * 100) : 0;
      const sent = loaded >= total;
      this.show(
        percent,
        sent
          ? `Sent ${bytes(total)} at ${speed}; converting ${file.name}…`
          : `Uploading ${file.name}: ${bytes(loaded)} of ${bytes(total)} at ${speed}`,
      );
    });
    try {
      const media = await this.current.promise;
      this.show(100, `Uploaded ${file.name} (${bytes(file.size)}${speed && ` at ${speed}`}).`);
      this.library.add(media);
      notice(this.done, `${media.filename} (${described(media)}) is in the library and selected in Create session.`);
    } catch (error) {
      this.progress.hidden = true;
      errorNotice(this.error, error, this.signInUrl);
    } finally {
      this.current = null;
      this.cancel.hidden = true;
      this.input.disabled = false;
      this.input.value = "";
    }
  }

  show(percent, text) {
    this.bar.value = percent;
    this.percent.textContent = `${percent}%`;
    this.status.textContent = text;
  }
}
