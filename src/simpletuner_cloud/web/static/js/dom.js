// Building the page without HTML strings: every value from the API goes in as text (textContent or
// an attribute), so nothing the server or a dataset says can become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function setProps(node, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** `h("p", {class: "hint"}, "text", otherNode)`: an element with properties and children. */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  append(node, children);
  return node;
}

export function svg(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setProps(node, props);
  append(node, children);
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Only http(s) links from the API become hrefs (never `javascript:` or `data:`). */
export function safeHref(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

export function externalLink(url, text) {
  const href = safeHref(url);
  return href ? h("a", { href, rel: "noreferrer noopener", target: "_blank" }, text ?? url) : text ?? url ?? "";
}

let ids = 0;
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A titled section; `id` names it for tests and links. */
export function card(title, props, ...children) {
  const headingId = uid("card");
  return h(
    "section",
    { class: "card", "aria-labelledby": headingId, ...props },
    h("h3", { id: headingId }, title),
    ...children,
  );
}

function hintFor(control, hint) {
  if (!hint) return null;
  const node = h("span", { class: "hint", id: uid("hint") }, hint);
  control.setAttribute("aria-describedby", node.id);
  return node;
}

/** A labelled control: `<label for>` names it (only the label's words), the hint describes it. */
export function field(text, control, hint) {
  if (!control.id) control.id = uid("field");
  return h("div", { class: "field" }, h("label", { class: "label", for: control.id }, text), control, hintFor(control, hint));
}

export function checkbox(text, props, hint) {
  const box = h("input", { type: "checkbox", ...props });
  if (!box.id) box.id = uid("check");
  return h("div", { class: "check" }, box, h("span", {}, h("label", { for: box.id }, text), hint ? " " : null, hintFor(box, hint)));
}

/** Radio buttons in a fieldset; `quiet` hides the legend visually when a heading already says it. */
export function radios(name, legend, options, selected, { quiet = false } = {}) {
  return h(
    "fieldset",
    { class: quiet ? "radios quiet" : "radios" },
    h("legend", { class: quiet ? "visually-hidden" : null }, legend),
    options.map((o) => {
      const input = h("input", { type: "radio", name, value: o.value, checked: o.value === selected, id: o.id || uid("radio") });
      return h("div", { class: "check" }, input, h("span", {}, h("label", { for: input.id }, o.label), o.hint ? " " : null, hintFor(input, o.hint)));
    }),
  );
}

export function select(props, options, selected) {
  const node = h("select", props);
  for (const o of options) node.append(new Option(o.label, o.value, false, o.value === selected));
  if (selected !== undefined) node.value = selected ?? "";
  return node;
}

export function facts(pairs, props) {
  return h(
    "dl",
    { class: "facts", ...props },
    pairs.filter(Boolean).map(([term, value, id]) => [h("dt", {}, term), h("dd", { id }, value ?? "—")]),
  );
}

/** A table; `responsive` lays rows out as labelled blocks on narrow screens (cells carry their
 * header in data-label), others scroll sideways inside a focusable region. */
export function table(headers, rows, { id, caption, responsive = false, label } = {}) {
  const node = h(
    "table",
    { id, class: responsive ? "responsive" : null },
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    h(
      "tbody",
      {},
      rows.map((cells) => rowOf(headers, cells)),
    ),
  );
  if (responsive) return node;
  return h("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": label || caption || "table" }, node);
}

export function rowOf(headers, cells, props) {
  return h(
    "tr",
    props,
    cells.map((cell, i) => h("td", { "data-label": headers[i] }, cell ?? "")),
  );
}

/** The `{error: {code, message, hint}}` of a failed answer, shown as message, code and hint. */
export function errorOf(result) {
  const error = result && result.body && result.body.error;
  if (error) return error;
  if (result && result.status === 0) {
    return { code: "network", message: "The server did not answer.", hint: "Is `simpletuner server` still running?" };
  }
  return { code: "http_" + (result ? result.status : "error"), message: `Request failed (HTTP ${result?.status}).`, hint: "" };
}

function errorParts(error) {
  return [
    h("p", {}, h("strong", {}, error.message || "Something failed."), " ", h("code", {}, `(${error.code})`)),
    error.hint ? h("p", { class: "hint" }, error.hint) : null,
  ];
}

export function errorBox(error, props) {
  return h("div", { class: "message bad", role: "alert", ...props }, errorParts(error));
}

/** Fill a result area (an aria-live region) with one kind of message. */
export function say(target, kind, ...lines) {
  target.className = `message ${kind}`;
  clear(
    target,
    lines.filter(Boolean).map((line, i) => h("p", { class: i ? "hint" : null }, line)),
  );
}

/** Show a failed answer (or an `{code, message, hint}` error) in a result area. */
export function sayError(target, failure) {
  const error = failure && "status" in failure ? errorOf(failure) : failure;
  target.className = "message bad";
  clear(target, errorParts(error));
}

export function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

/** A bar with a name for assistive technology; `value` null shows an indeterminate bar. */
export function bar(label, value, max = 100) {
  const node = h("progress", { "aria-label": label, max: String(max) });
  if (value !== null && value !== undefined) node.value = value;
  return node;
}
