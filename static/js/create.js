// The create form: the source (a recording of the library, the operator's microphone, or a
// stream URL), model (unavailable ones disabled, with the reason), language, target language
// (for models that translate), preset, and whether to tell speakers apart (where the server
// has the speaker model; where not, why not). Start (Go live, for the microphone) creates the
// session and hands it to onCreated(session, {microphone}) (the page joins it, and sends the
// microphone to it).

import { api } from "./api.js";
import { duration, errorNotice, notice, withCode } from "./format.js";
import { LevelMeter, Microphone, microphones } from "./microphone.js";

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
    this.media = document.getElementById("create-media");
    this.mediaHelp = document.getElementById("create-media-help");
    this.language = document.getElementById("create-language");
    this.targetField = document.getElementById("create-target-field");
    this.target = document.getElementById("create-target");
    this.preset = document.getElementById("create-preset");
    this.diarize = document.getElementById("create-diarize");
    this.diarizeHelp = document.getElementById("create-diarize-help");
    this.diarizeMissing = document.getElementById("create-diarize-missing");
    this.diarization = null; // /api/models' word on it: {available, unavailable_reason, ...}
    this.error = document.getElementById("create-error");
    this.submit = document.getElementById("create-start");
    this.progress = document.getElementById("create-progress");
    this.sources = [...this.form.querySelectorAll('input[name="source"]')];
    this.recordingField = document.getElementById("create-recording-field");
    this.micField = document.getElementById("create-mic-field");
    this.micDevice = document.getElementById("create-mic-device");
    this.micStatus = document.getElementById("create-mic-status");
    this.micAllow = document.getElementById("create-mic-allow");
    this.streamField = document.getElementById("create-stream-field");
    this.url = document.getElementById("create-url");
    this.microphone = new Microphone();
    this.meter = new LevelMeter(document.getElementById("create-mic-level"), this.microphone);
    this.busy = false;

    for (const radio of this.sources) radio.addEventListener("change", () => this.onSource());
    this.micAllow.addEventListener("click", () => this.openMicrophone());
    this.micDevice.addEventListener("change", () => this.openMicrophone(this.micDevice.value));
    this.microphone.addEventListener("close", () => this.onMicrophoneClosed());
    this.microphone.addEventListener("error", (event) => {
      this.onMicrophoneClosed();
      notice(this.error, event.detail);
    });
    this.url.addEventListener("input", () => this.updateSubmit());
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
        if (!m.available) option.title = `${m.display_name}: ${shortReason(m.unavailable_reason)}`;
        return option;
      }),
    );
    const unavailable = this.models.filter((m) => !m.available);
    this.unavailable.hidden = unavailable.length === 0;
    this.unavailable.replaceChildren(...unavailable.map((m) => unavailableLine(m)));
    const first = this.models.find((m) => m.available);
    if (first) this.model.value = first.id;
    this.onModel();
  }

  get source() {
    return this.sources.find((radio) => radio.checked)?.value ?? "recording";
  }

  // The fields of the chosen source; the microphone is asked for as soon as it is chosen.
  onSource() {
    const source = this.source;
    this.recordingField.hidden = source !== "recording";
    this.micField.hidden = source !== "microphone";
    this.streamField.hidden = source !== "stream";
    this.submit.textContent = source === "microphone" ? "Go live" : "Start";
    notice(this.error, "");
    if (source === "microphone" && !this.microphone.live) this.openMicrophone();
    this.updateSubmit();
  }

  // --- the microphone -------------------------------------------------------------------------

  async openMicrophone(deviceId) {
    notice(this.error, "");
    this.micAllow.disabled = true;
    this.micStatus.textContent = "Asking the browser for the microphone…";
    try {
      await this.microphone.open(deviceId);
    } catch (error) {
      this.onMicrophoneClosed();
      notice(this.error, error.message);
      return false;
    } finally {
      this.micAllow.disabled = false;
    }
    this.micAllow.hidden = true;
    this.micStatus.textContent = `Listening to ${this.microphone.label || "the microphone"}: speak and watch the level move.`;
    this.meter.start();
    await this.fillDevices();
    this.updateSubmit();
    return true;
  }

  async fillDevices() {
    let devices = [];
    try {
      devices = await microphones();
    } catch {
      // the list is a convenience: the default device is open already
    }
    this.micDevice.replaceChildren(...devices.map((d, i) => new Option(d.label || `Microphone ${i + 1}`, d.deviceId)));
    if (devices.some((d) => d.deviceId === this.microphone.deviceId)) this.micDevice.value = this.microphone.deviceId;
    this.micDevice.disabled = devices.length < 2;
  }

  // Closed (the session it fed has ended, or the device went away): Allow microphone opens it again.
  onMicrophoneClosed() {
    this.meter.stop();
    this.micAllow.hidden = false;
    this.micStatus.textContent = "The microphone is off: press Allow microphone to use it again.";
    this.updateSubmit();
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
    this.showDiarization(model?.diarization ?? null);
    this.updateSubmit();
  }

  // Every model has the same diarizer beside it; the box is ticked when it becomes available.
  showDiarization(diarization) {
    const available = Boolean(diarization?.available);
    if (available !== Boolean(this.diarization?.available)) this.diarize.checked = available;
    this.diarization = diarization;
    this.diarize.disabled = !available;
    this.diarizeHelp.hidden = !available;
    this.diarizeMissing.hidden = available || !diarization;
    this.diarize.setAttribute("aria-describedby", available ? "create-diarize-help" : "create-diarize-summary");
    const reason = diarization?.unavailable_reason ?? "";
    // the summary says it already: the details start where the reason goes on
    const rest = reason.replace(/^Speaker diarization is not installed:\s*/, "");
    withCode(document.getElementById("create-diarize-reason"), rest.charAt(0).toUpperCase() + rest.slice(1));
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
    const ready = {
      recording: this.library.items.length > 0,
      microphone: true, // Go live asks for the microphone first if it is not open
      stream: this.url.value.trim() !== "",
    }[this.source];
    this.submit.disabled = this.busy || !this.selectedModel?.available || !ready;
  }

  async start() {
    notice(this.error, "");
    const source = this.source;
    const fields = { model_id: this.model.value };
    if (source === "recording") fields.media_id = Number(this.media.value);
    else fields.source = source;
    if (source === "stream") fields.url = this.url.value.trim();
    fields.language = this.language.value || undefined;
    fields.preset = this.preset.value || undefined;
    if (this.selectedModel?.translates && this.target.value) fields.target_language = this.target.value;
    if (this.diarization?.available) fields.diarize = this.diarize.checked;
    this.busy = true;
    this.updateSubmit();
    try {
      if (source === "microphone") {
        this.microphone.resume(); // this click lets its level meter run, if the browser held it
        if (!this.microphone.live && !(await this.openMicrophone())) return;
      }
      // the server probes a stream before it answers (LIVE_PROBE_SECS at most)
      notice(this.progress, source === "stream" ? "Opening the stream: the server checks that it gives audio…" : "");
      const session = await api.createSession(fields);
      this.onCreated(session, { microphone: source === "microphone" ? this.microphone : null });
    } catch (error) {
      errorNotice(this.error, error, this.config.signInUrl);
    } finally {
      notice(this.progress, "");
      this.busy = false;
      this.updateSubmit();
    }
  }
}

// "Parakeet TDT 0.6B v3: not installed", and behind it (a disclosure) the server's sentence on how to get it.
function unavailableLine(model) {
  const item = document.createElement("li");
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const name = document.createElement("strong");
  name.textContent = model.display_name;
  const how = document.createElement("span");
  how.className = "how";
  how.textContent = "how to get it";
  summary.append(name, `: ${shortReason(model.unavailable_reason)} — `, how);
  const reason = document.createElement("p");
  withCode(reason, reasonDetails(model.unavailable_reason));
  details.append(summary, reason);
  item.append(details);
  return item;
}

// What the server's sentence says in a word or two: "Parakeet TDT is not downloaded: ..." -> "not installed".
function shortReason(reason) {
  return /\bnot (downloaded|installed)\b/i.test(reason ?? "") ? "not installed" : "cannot be used here";
}

// The sentence after its "<name> is not downloaded:" opening (the line says so already), capitalised.
function reasonDetails(reason) {
  const rest = (reason ?? "").replace(/^[^:`]*\bnot (downloaded|installed):\s*/i, "");
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}

function languageName(code) {
  try {
    return `${LANGUAGE_NAMES.of(code)} (${code})`;
  } catch {
    return code;
  }
}
