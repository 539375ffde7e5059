// The Cloud tab's entry point: the router picks a view for the hash, runs it in <main>, and
// cleans the previous one up (its live subscriptions and timers). The shell (header, navigation,
// sandbox banner) is rendered by the server.
import { AUTH_REQUIRED } from "./api.js";
import { clear, h } from "./dom.js";
import { match, parseHash } from "./router.js";
import jobView from "./views/job.js";
import jobsView from "./views/jobs.js";
import loginView from "./views/login.js";
import overviewView from "./views/overview.js";
import publishingView from "./views/publishing.js";
import settingsView from "./views/settings.js";
import spendView from "./views/spend.js";
import submitView from "./views/submit.js";
import webhooksView from "./views/webhooks.js";

const ROUTES = [
  { pattern: "overview", name: "overview", nav: "overview", view: overviewView },
  { pattern: "jobs", name: "jobs", nav: "jobs", view: jobsView },
  { pattern: "jobs/:id", name: "job", nav: "jobs", view: jobView },
  { pattern: "submit", name: "submit", nav: "submit", view: submitView },
  { pattern: "spend", name: "spend", nav: "spend", view: spendView },
  { pattern: "settings", name: "settings", nav: "settings", view: settingsView },
  { pattern: "publishing", name: "publishing", nav: "publishing", view: publishingView },
  { pattern: "webhooks", name: "webhooks", nav: "webhooks", view: webhooksView },
  { pattern: "login", name: "login", nav: null, view: loginView },
];

const notFound = {
  title: () => "Not found",
  render(root) {
    root.append(
      h("h2", { tabindex: "-1" }, "Nothing here"),
      h("p", {}, "This page of the Cloud tab does not exist. ", h("a", { href: "#/overview" }, "Go to the overview"), "."),
    );
  },
};

const main = document.getElementById("view");
const announcer = document.getElementById("route-announcer");
let signedIn = document.body.dataset.signedIn === "true";
let cleanups = [];
let generation = 0;

function runCleanups() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (_) {
      // a view's clean-up must not stop the next view from starting
    }
  }
}

function highlight(nav) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route(first) {
  const { parts, query } = parseHash(location.hash);
  if (!signedIn && parts[0] !== "login") {
    history.replaceState(null, "", "#/login");
    return route(first);
  }
  if (!parts.length) {
    history.replaceState(null, "", "#/overview");
    return route(first);
  }
  const found = match(ROUTES, parts);
  const entry = found ? found.route : { name: "not-found", nav: null, view: notFound };
  runCleanups();
  generation += 1;
  const mine = generation;
  document.body.dataset.ready = "false";
  document.body.dataset.view = entry.name;
  highlight(entry.nav);
  const root = h("div", { class: "view", id: `view-${entry.name}` });
  clear(main, root);
  const ctx = {
    params: found ? found.params : {},
    query,
    current: () => mine === generation,
    onCleanup: (fn) => cleanups.push(fn),
  };
  const title = entry.view.title(ctx.params);
  document.title = `${title} · SimpleTuner Cloud`;
  try {
    await entry.view.render(root, ctx);
  } catch (error) {
    root.append(h("p", { class: "message bad", role: "alert" }, `This view failed to load: ${error.message}`));
  }
  if (mine !== generation) return;
  if (!first) {
    const heading = root.querySelector("h2");
    if (heading) heading.focus({ preventScroll: false });
    announcer.textContent = title;
  }
  document.body.dataset.ready = "true";
}

document.addEventListener(AUTH_REQUIRED, () => {
  document.getElementById("auth-warning").hidden = false;
  if (signedIn) {
    signedIn = false;
    location.hash = "#/login";
  }
});

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", () => route(false));
route(true);
