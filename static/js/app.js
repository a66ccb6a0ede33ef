// The page: wires the components together once the server's configuration is known.

import { api } from "./api.js";
import { CreateForm } from "./create.js";
import { notice } from "./format.js";
import { MediaLibrary } from "./library.js";
import { MediaList } from "./media-list.js";
import { Player } from "./player.js";
import { SessionList } from "./sessions.js";
import { Tabs } from "./tabs.js";
import { UploadForm } from "./upload.js";

async function main() {
  const tablist = document.querySelector('[role="tablist"]');
  const tabs = new Tabs(tablist);
  let config;
  try {
    config = await api.config();
  } catch (error) {
    notice(document.getElementById("app-error"), error.message);
    return;
  }
  const library = new MediaLibrary();
  const player = new Player(config, { onLeave: () => document.getElementById(`tab-${tabs.current}`).focus() });
  const sessions = new SessionList({ onJoin: (id) => player.join(id) });
  const create = new CreateForm(library, config, {
    onCreated: (session) => {
      player.join(session.id);
      sessions.refresh();
    },
  });
  new MediaList(library);
  new UploadForm(library, config);
  tablist.addEventListener("tabchange", () => sessions.schedule());

  await Promise.all([
    create.load().catch((error) => notice(document.getElementById("create-error"), error.message)),
    library.refresh().catch((error) => notice(document.getElementById("media-error"), error.message)),
  ]);
  sessions.schedule();
  const joined = Number(new URLSearchParams(location.search).get("session"));
  if (joined) player.join(joined);
  document.body.dataset.ready = "true"; // the browser tests wait for this
  window.app = { tabs, library, sessions, player }; // for the console, and for the browser tests
}

main();
