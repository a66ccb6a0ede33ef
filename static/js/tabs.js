// The three tabs (WAI-ARIA tabs pattern): click or arrow keys to switch; the URL hash
// (#browse, #create, #upload) names the open tab so that links and reloads keep it.
// Emits "tabchange" on the tablist with detail {name}.

export class Tabs {
  constructor(tablist) {
    this.tablist = tablist;
    this.tabs = [...tablist.querySelectorAll('[role="tab"]')];
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.show(nameOf(tab), { focus: false, updateHash: true }));
    }
    tablist.addEventListener("keydown", (event) => this.onKey(event));
    window.addEventListener("hashchange", () => this.showFromHash());
    this.showFromHash();
  }

  get current() {
    return nameOf(this.tabs.find((tab) => tab.getAttribute("aria-selected") === "true"));
  }

  showFromHash() {
    const name = location.hash.slice(1);
    if (this.tabs.some((tab) => nameOf(tab) === name)) this.show(name, { focus: false, updateHash: false });
  }

  show(name, { focus = true, updateHash = true } = {}) {
    for (const tab of this.tabs) {
      const selected = nameOf(tab) === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
      if (selected && focus) tab.focus();
    }
    if (updateHash && location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
    this.tablist.dispatchEvent(new CustomEvent("tabchange", { detail: { name } }));
  }

  onKey(event) {
    const index = this.tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const last = this.tabs.length - 1;
    const target = {
      ArrowRight: index === last ? 0 : index + 1,
      ArrowLeft: index === 0 ? last : index - 1,
      Home: 0,
      End: last,
    }[event.key];
    if (target === undefined) return;
    event.preventDefault();
    this.show(nameOf(this.tabs[target]));
  }
}

function nameOf(tab) {
  return tab.id.replace(/^tab-/, "");
}
