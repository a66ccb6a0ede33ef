// The create form: model (unavailable ones disabled, with the reason), recording, language,
// target language (for models that translate) and preset. Start creates the session and
// hands it to onCreated (the page joins it).

import { api } from "./api.js";
import { duration, errorNotice, notice } from "./format.js";

const LANGUAGE_NAMES = new Intl.DisplayNames(["en"], { type: "language" });

export class CreateForm {
  constructor(library, config, { onCreated }) {
    this.library = library;
    this.config = config;
    this.onCreated = onCreated;
    this.models = [];
    this.form = document.getElementById("create-form");
    this.model = document.getElementById("create-model");
    this.modelHelp = document.getElementById("create-model-help");
    this.unavailable = document.getElementById("create-unavailable");
    this.unavailableDetails = document.getElementById("create-unavailable-details");
    this.media = document.getElementById("create-media");
    this.mediaHelp = document.getElementById("create-media-help");
    this.language = document.getElementById("create-language");
    this.targetField = document.getElementById("create-target-field");
    this.target = document.getElementById("create-target");
    this.preset = document.getElementById("create-preset");
    this.error = document.getElementById("create-error");
    this.submit = document.getElementById("create-start");

    this.model.addEventListener("change", () => this.onModel());
    this.language.addEventListener("change", () => this.fillTargets());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    library.addEventListener("change", (event) => this.fillMedia(event.detail.selectId));
  }

  async load() {
    this.models = await api.models();
    this.model.replaceChildren(
      ...this.models.map((m) => {
        const label = m.available ? m.display_name : `${m.display_name} (unavailable)`;
        const option = new Option(label, m.id);
        option.disabled = !m.available;
        if (!m.available) option.title = m.unavailable_reason;
        return option;
      }),
    );
    const unavailable = this.models.filter((m) => !m.available);
    this.unavailableDetails.hidden = unavailable.length === 0;
    // open where there is room for the reasons; on a phone they are one tap away
    this.unavailableDetails.open = matchMedia("(min-width: 40rem)").matches;
    document.getElementById("create-unavailable-summary").textContent =
      `Not available on this server: ${unavailable.map((m) => m.display_name).join(", ")}`;
    this.unavailable.replaceChildren(
      ...unavailable.map((m) => {
          const item = document.createElement("li");
          const name = document.createElement("strong");
          name.textContent = `${m.display_name} is unavailable: `;
          item.append(name, m.unavailable_reason);
          return item;
        }),
    );
    const first = this.models.find((m) => m.available);
    if (first) this.model.value = first.id;
    this.onModel();
  }

  get selectedModel() {
    return this.models.find((m) => m.id === this.model.value);
  }

  onModel() {
    const model = this.selectedModel;
    this.modelHelp.textContent = model ? model.description : "No model is available on this server.";
    this.language.replaceChildren(...(model?.languages ?? []).map((code) => new Option(languageName(code), code)));
    const presets = model?.presets?.length ? model.presets : this.config.presets;
    const previous = this.preset.value || this.config.defaultPreset;
    this.preset.replaceChildren(...presets.map((name) => new Option(name.replace(/_/g, " "), name)));
    this.preset.value = presets.includes(previous) ? previous : presets[0];
    this.fillTargets();
    this.updateSubmit();
  }

  fillTargets() {
    const model = this.selectedModel;
    this.targetField.hidden = !model?.translates;
    const others = (model?.languages ?? []).filter((code) => code !== this.language.value);
    this.target.replaceChildren(
      new Option("No translation", ""),
      ...others.map((code) => new Option(languageName(code), code)),
    );
  }

  fillMedia(selectId) {
    const previous = selectId ?? Number(this.media.value);
    const items = this.library.items;
    this.media.replaceChildren(
      ...items.map((m) => {
        const label = `${m.filename} (${duration(m.duration_secs)})${m.missing ? " (file missing)" : ""}`;
        const option = new Option(label, m.id);
        option.disabled = m.missing;  // the server would refuse it: the file is not there to play
        return option;
      }),
    );
    const playable = items.filter((m) => !m.missing);
    if (playable.some((m) => m.id === previous)) this.media.value = String(previous);
    else if (playable.length) this.media.value = String(playable[0].id);
    this.mediaHelp.hidden = items.length > 0;
    this.media.disabled = items.length === 0;
    this.updateSubmit();
  }

  updateSubmit() {
    this.submit.disabled = !this.selectedModel?.available || !this.library.items.length;
  }

  async start() {
    notice(this.error, "");
    const fields = {
      model_id: this.model.value,
      media_id: Number(this.media.value),
      language: this.language.value || undefined,
      preset: this.preset.value || undefined,
    };
    if (this.selectedModel?.translates && this.target.value) fields.target_language = this.target.value;
    this.submit.disabled = true;
    try {
      const session = await api.createSession(fields);
      this.onCreated(session);
    } catch (error) {
      errorNotice(this.error, error, this.config.signInUrl);
    } finally {
      this.updateSubmit();
    }
  }
}

function languageName(code) {
  try {
    return `${LANGUAGE_NAMES.of(code)} (${code})`;
  } catch {
    return code;
  }
}
