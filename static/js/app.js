// The page: wires the components together once the server's configuration is known.
// A listener's page (body[data-operator=false]) has no create or upload tab and no operator
// buttons in the player: the template leaves them out, and their components are not started.

import { api } from "./api.js";
import { CreateForm } from "./create.js";
import { notice, signInHref } from "./format.js";
import { MediaLibrary } from "./library.js";
import { MediaList } from "./media-list.js";
import { Player } from "./player.js";
import { SessionList } from "./sessions.js";
import { Tabs } from "./tabs.js";
import { UploadForm } from "./upload.js";

async function main() {
  const operator = document.body.dataset.operator === "true";
  const tablist = document.querySelector('[role="tablist"]');
  const tabs = new Tabs(tablist);
  let config;
  try {
    config = await api.config();
  } catch (error) {
    notice(document.getElementById("app-error"), error.message);
    return;
  }
  keepSignInHere(config.signInUrl);
  // the player's socket and the Browse feed both hear a session's listeners: each tells the other
  const player = new Player(config, {
    operator,
    onLeave: () => document.getElementById(`tab-${tabs.current}`).focus(),
    onCount: (id, count) => sessions.noteCount(id, count),
  });
  const sessions = new SessionList({ onJoin: (id) => player.join(id), config, onCount: (id, count) => player.showCount(id, count) });
  tablist.addEventListener("tabchange", () => sessions.schedule());
  const library = operator ? await startOperating(config, player, sessions) : null;

  sessions.schedule();
  const params = new URLSearchParams(location.search);
  const joined = Number(params.get("session"));
  if (joined) player.join(joined, params.get("key"));
  document.body.dataset.ready = "true"; // the browser tests wait for this
  window.app = { tabs, library, sessions, player }; // for the console, and for the browser tests
}

// The create and upload tabs, and the library they share (GET /api/media is for operators only).
async function startOperating(config, player, sessions) {
  const library = new MediaLibrary();
  const create = new CreateForm(library, config, {
    onCreated: (session, { microphone } = {}) => {
      player.join(session.id, null, { microphone });
      sessions.refresh();
    },
  });
  new MediaList(library);
  new UploadForm(library, config);
  await Promise.all([
    create.load().catch((error) => notice(document.getElementById("create-error"), error.message)),
    library.refresh().catch((error) => notice(document.getElementById("media-error"), error.message)),
  ]);
  return library;
}

// The header's Sign in link comes back to the session being listened to (its address changes on join).
function keepSignInHere(signInUrl) {
  const link = document.getElementById("sign-in");
  link?.addEventListener("click", () => (link.href = signInHref(signInUrl)));
}

main();
