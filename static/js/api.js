// The REST API: every call resolves with the JSON body or throws an ApiError carrying
// the server's own sentence ({"error": "..."}), which the page shows as it is.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const UNREACHABLE = "The server cannot be reached; check the connection and try again.";

// Django checks it on every POST, PATCH and DELETE of a signed-in page; the template puts it in <head>.
const CSRF_TOKEN = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function request(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (method !== "GET") options.headers["X-CSRFToken"] = CSRF_TOKEN;
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError(0, UNREACHABLE);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, errorSentence(response.status, data));
  return data;
}

function errorSentence(status, data) {
  return (data && data.error) || `The server answered with status ${status} and no explanation.`;
}

// `key` is a share link's (?session=ID&key=KEY): with LISTEN_ACCESS=link a listener needs it
// to see the session at all; operators and public servers need none.
export const api = {
  config: () => request("GET", "/api/config"),
  models: () => request("GET", "/api/models"),
  media: () => request("GET", "/api/media"),
  deleteMedia: (id) => request("DELETE", `/api/media/${id}`),
  sessions: () => request("GET", "/api/sessions"),
  session: (id, key) => request("GET", withKey(`/api/sessions/${id}`, key)),
  createSession: (fields) => request("POST", "/api/sessions", fields),
  // names: {"0": "Diane"}, merged into the session's; null or "" gives back "Speaker 1"
  renameSpeakers: (id, names) => request("PATCH", `/api/sessions/${id}`, { speaker_names: names }),
  stopSession: (id) => request("DELETE", `/api/sessions/${id}`),
  pauseSession: (id) => request("POST", `/api/sessions/${id}/pause`),
  resumeSession: (id) => request("POST", `/api/sessions/${id}/resume`),
  endSession: (id) => request("POST", `/api/sessions/${id}/end`),
  transcript: (id, key) => request("GET", transcriptUrl(id, "json", undefined, key)),
};

// Without a version the server gives the best it has (final once it exists, else live).
export function transcriptUrl(id, format, version, key) {
  const url = `/api/sessions/${id}/transcript?format=${format}`;
  return withKey(version ? `${url}&version=${version}` : url, key);
}

// A URL with a share link's key added to its query, or as it is without one.
export function withKey(url, key) {
  if (!key) return url;
  return `${url}${url.includes("?") ? "&" : "?"}key=${encodeURIComponent(key)}`;
}

// An upload with progress (fetch cannot report upload progress; XMLHttpRequest can).
// onProgress({loaded, total, bytesPerSecond}) while the body is sent; resolves with the new media.
export function uploadMedia(file, onProgress) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    const startedAt = performance.now();
    xhr.upload.addEventListener("progress", (event) => {
      const seconds = (performance.now() - startedAt) / 1000;
      const total = event.lengthComputable ? event.total : file.size;
      onProgress({ loaded: event.loaded, total, bytesPerSecond: seconds > 0 ? event.loaded / seconds : 0 });
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        // not JSON: the sentence below says what happened
      }
      if (xhr.status === 201) resolve(data);
      else reject(new ApiError(xhr.status, errorSentence(xhr.status, data)));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "The upload failed: the connection to the server was lost.")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "The upload was cancelled.")));
    xhr.open("POST", "/api/media/upload");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", CSRF_TOKEN);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
