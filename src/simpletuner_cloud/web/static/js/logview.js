// A job's log, live: the last lines are read over REST (`logs?tail=`), new text arrives by offset
// from the live feed, and only the newest MAX_LINES lines are ever kept or drawn, so a 50 MB log
// never reaches the page whole. A line redrawn with `\r` (a progress bar) shows its last drawing.
// Follow keeps the view at the end; search shows the matching lines of what is loaded; the whole
// log can still be downloaded, as it came.
import { api, withQuery } from "./api.js";
import { checkbox, field, h } from "./dom.js";
import { bytes, count } from "./format.js";

export const MAX_LINES = 5000;
const MAX_LINE_CHARS = 4000;
const MAX_MATCHES = 1000;

// Offsets into a log count characters as the server does (code points); a JS string's `length`
// counts an emoji such as 🚀 twice. Text without one (nearly all of it) takes the quick way.
const ASTRAL = /[\uD800-\uDBFF]/;

function characters(text) {
  if (!ASTRAL.test(text)) return text.length;
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

function withoutFirst(text, n) {
  if (n <= 0) return text;
  if (!ASTRAL.test(text)) return text.slice(n);
  let index = 0;
  for (const char of text) {
    if (n === 0) break;
    index += char.length;
    n -= 1;
  }
  return text.slice(index);
}

/** A line as a terminal leaves it: a progress bar (tqdm) redraws itself after each `\r`, so only
 * the last drawing shows (a CRLF's `\r` ends the line, it draws nothing). */
function settled(line) {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  const last = text.lastIndexOf("\r");
  return last < 0 ? text : text.slice(last + 1);
}

function clip(line) {
  return line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)} … [${count(line.length - MAX_LINE_CHARS)} more characters]` : line;
}

export class LogView {
  constructor(jobId) {
    this.jobId = jobId;
    this.lines = [];
    this.partial = ""; // text after the last newline, completed by the next chunk
    this.next = 0; // offset of the next character we expect
    this.start = 0; // offset of the first character held
    this.size = 0;
    this.dropped = false;
    this.frame = null;
    this.catching = null;
    this.again = false;
    this.follow = checkbox("Follow", { id: "log-follow", checked: true });
    this.search = h("input", { type: "search", id: "log-search", autocomplete: "off", spellcheck: "false" });
    const notice = h("p", { class: "hint", id: "log-notice", "aria-live": "polite" });
    this.notice = notice;
    this.download = h("button", { type: "button", class: "secondary", id: "log-download" }, "Download the whole log");
    this.pre = h("pre", { class: "log", id: "log-text", tabindex: "0", role: "log", "aria-label": "Job log", "aria-live": "off" });
    this.element = h(
      "div",
      { class: "logview" },
      h("div", { class: "toolbar" }, this.follow, field("Search the log", this.search), this.download),
      notice,
      this.pre,
    );
    this.followBox().addEventListener("change", () => this.schedule());
    this.search.addEventListener("input", () => this.schedule());
    this.pre.addEventListener("scroll", () => {
      const atEnd = this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 24;
      if (!atEnd && this.followBox().checked && this.pre.dataset.rendering !== "true") this.followBox().checked = false;
    });
    this.download.addEventListener("click", () => this.saveWhole());
  }

  followBox() {
    return this.follow.querySelector("input");
  }

  /** The last lines from REST. */
  async load() {
    const result = await api("GET", withQuery(`api/cloud/jobs/${encodeURIComponent(this.jobId)}/logs`, { tail: MAX_LINES }));
    if (!result.ok) return result;
    const { offset, next_offset: next, size, text } = result.body;
    this.lines = [];
    this.partial = "";
    this.start = offset;
    this.next = offset;
    this.dropped = offset > 0;
    this.take(text, next);
    this.size = Math.max(this.size, size);
    this.schedule();
    return result;
  }

  /** Catch up from where the page stopped, after the live feed was lost for a while. Calls that
   * come while one is reading join it (and it reads once more), so text is never added twice. */
  catchUp() {
    if (this.catching) {
      this.again = true;
      return this.catching;
    }
    this.catching = (async () => {
      do {
        this.again = false;
        const result = await api("GET", withQuery(`api/cloud/jobs/${encodeURIComponent(this.jobId)}/logs`, { after: this.next }));
        if (result.ok) {
          this.size = Math.max(this.size, result.body.size);
          this.absorb(result.body.offset, result.body.text);
        }
      } while (this.again);
    })().finally(() => {
      this.catching = null;
    });
    return this.catching;
  }

  /** A `log` event: `text` starting at `offset` in the full log. */
  append(offset, text) {
    if (!this.absorb(offset, text)) this.catchUp(); // a gap: read it over REST rather than show a hole
  }

  /** Keep what `text` (from `offset` on) adds past what is held; false when it starts past the end. */
  absorb(offset, text) {
    if (offset > this.next) return false;
    const fresh = withoutFirst(text, this.next - offset);
    if (fresh) {
      this.take(fresh, this.next + characters(fresh));
      this.size = Math.max(this.size, this.next);
      this.schedule();
    }
    return true;
  }

  take(text, next) {
    const pieces = (this.partial + text).split("\n");
    this.partial = pieces.pop();
    for (const line of pieces) this.lines.push(clip(settled(line)));
    if (this.lines.length > MAX_LINES) {
      this.lines.splice(0, this.lines.length - MAX_LINES);
      this.dropped = true;
    }
    this.next = next;
  }

  /** Draw at most every 50 ms however fast text arrives (a timer, not an animation frame: those
   * stop in a background tab, and the log must be current when the person comes back). */
  schedule() {
    if (this.frame) return;
    this.frame = setTimeout(() => {
      this.frame = null;
      this.render();
    }, 50);
  }

  render() {
    const all = this.partial ? [...this.lines, clip(settled(this.partial))] : this.lines;
    const query = this.search.value.trim().toLowerCase();
    this.pre.dataset.rendering = "true";
    if (!query) {
      this.pre.textContent = all.join("\n");
      this.pre.dataset.lines = String(all.length);
      this.notice.textContent = this.dropped
        ? `Showing the last ${count(all.length)} lines of ${bytes(this.size)}; download the whole log for the rest.`
        : all.length
          ? `${count(all.length)} lines.`
          : "No log lines yet.";
    } else {
      const matches = all.filter((line) => line.toLowerCase().includes(query));
      const shown = matches.slice(-MAX_MATCHES);
      const nodes = [];
      for (const line of shown) {
        const at = line.toLowerCase().indexOf(query);
        nodes.push(line.slice(0, at), h("mark", {}, line.slice(at, at + query.length)), line.slice(at + query.length) + "\n");
      }
      this.pre.replaceChildren(...nodes.map((n) => (typeof n === "string" ? document.createTextNode(n) : n)));
      this.pre.dataset.lines = String(shown.length);
      this.notice.textContent =
        `${count(matches.length)} of ${count(all.length)} loaded lines match` +
        (matches.length > shown.length ? ` (the last ${count(shown.length)} shown).` : ".");
    }
    if (this.followBox().checked) this.pre.scrollTop = this.pre.scrollHeight;
    setTimeout(() => {
      this.pre.dataset.rendering = "false";
    }, 0);
  }

  async saveWhole() {
    this.download.disabled = true;
    const result = await api("GET", `api/cloud/jobs/${encodeURIComponent(this.jobId)}/logs`);
    this.download.disabled = false;
    if (!result.ok) {
      this.notice.textContent = result.body?.error?.message || "The log could not be read.";
      return;
    }
    const url = URL.createObjectURL(new Blob([result.body.text], { type: "text/plain" }));
    const link = h("a", { href: url, download: `${this.jobId}.log` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
