// One live feed for the whole tab: `GET api/cloud/events` (Server-Sent Events) through the
// browser's EventSource. A dropped connection is resumed by EventSource itself, which sends
// `Last-Event-ID`, so nothing is skipped or repeated. If the stream fails for good (the server
// answered an error, or was gone too long), it is opened again with a growing pause, resuming after
// the last id it saw (`?after=`, since a new EventSource cannot send the header), and every view is
// also asked to catch up from the REST API (the server keeps a bounded history).
//
// The feed is for all jobs and starts "now", so opening a job page does not replay its history
// (a long log included); views read the history over REST and the feed brings what follows.

const EVENTS = ["status", "progress", "log", "upload", "event"];
const URL_ = "api/cloud/events";
const MAX_PAUSE_MS = 30_000;

class LiveFeed {
  constructor() {
    this.source = null;
    this.subscribers = new Set();
    this.resyncs = new Set();
    this.lastId = null;
    this.pause = 1000;
    this.reopenTimer = null;
    this.closeTimer = null;
    this.reopened = false;
    this.waiters = [];
  }

  /** `fn(type, data, id)` for every event (of one job when `job` is given). Returns an unsubscribe. */
  subscribe(fn, { job = null, onResync = null } = {}) {
    const entry = { fn, job };
    this.subscribers.add(entry);
    if (onResync) this.resyncs.add(onResync);
    clearTimeout(this.closeTimer);
    this.open();
    return () => {
      this.subscribers.delete(entry);
      if (onResync) this.resyncs.delete(onResync);
      // Views come and go on navigation; keep the stream a moment for the next one.
      if (!this.subscribers.size) this.closeTimer = setTimeout(() => this.close(), 5000);
    };
  }

  /** Resolves once the stream is open (or after 3 s without it), so a view reads its snapshot after
   * the feed's starting point and misses nothing in between. */
  ready() {
    if (this.source && this.source.readyState === EventSource.OPEN) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 3000);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  open() {
    if (this.source || this.reopenTimer) return;
    const resume = this.reopened && this.lastId ? `?after=${encodeURIComponent(this.lastId)}` : "";
    const source = new EventSource(URL_ + resume);
    this.source = source;
    this.state("connecting");
    source.onopen = () => {
      this.pause = 1000;
      this.state("open");
      for (const wake of this.waiters.splice(0)) wake();
      if (this.reopened) {
        this.reopened = false;
        for (const fn of this.resyncs) fn();
      }
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        this.source = null;
        this.reopened = true;
        this.state("reconnecting");
        this.reopenTimer = setTimeout(() => {
          this.reopenTimer = null;
          if (this.subscribers.size) this.open();
        }, this.pause);
        this.pause = Math.min(this.pause * 2, MAX_PAUSE_MS);
      } else {
        this.state("reconnecting"); // EventSource retries by itself, with Last-Event-ID
      }
    };
    for (const type of EVENTS) {
      source.addEventListener(type, (event) => this.dispatch(type, event));
    }
  }

  dispatch(type, event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    this.lastId = event.lastEventId;
    for (const { fn, job } of [...this.subscribers]) {
      if (job === null || data.job_id === job) fn(type, data, event.lastEventId);
    }
  }

  close() {
    if (this.source) this.source.close();
    this.source = null;
    this.lastId = null; // the next view starts "now" again
    this.reopened = false;
    clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    this.state("closed");
  }

  state(name) {
    document.body.dataset.live = name;
    const node = document.getElementById("live-state");
    if (!node) return;
    node.textContent = { open: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", closed: "" }[name];
    node.className = `live live-${name}`;
  }
}

export const live = new LiveFeed();

/** Calls `fn` at most once per `ms`, the last call always landing. */
export function throttle(fn, ms) {
  let timer = null;
  let last = 0;
  return (...args) => {
    const wait = last + ms - Date.now();
    clearTimeout(timer);
    if (wait <= 0) {
      last = Date.now();
      fn(...args);
    } else {
      timer = setTimeout(() => {
        last = Date.now();
        fn(...args);
      }, wait);
    }
  };
}
