// Login, for a browser that is not on the server's own machine (a tunnel, a reverse proxy, another
// computer): the link `simpletuner server` printed sets a session cookie. Pasting that link or its
// token here checks it first, then follows the link.
import { api } from "../api.js";
import { field, h, say } from "../dom.js";

/** The token from a pasted login link (`.../login?token=st_...`) or the token itself. */
export function tokenFrom(text) {
  const value = text.trim();
  const match = /[?&]token=([^&#\s]+)/.exec(value);
  return match ? decodeURIComponent(match[1]) : value;
}

export default {
  title: () => "Sign in",
  async render(root) {
    const signedIn = document.body.dataset.signedIn === "true";
    const tokenPath = document.body.dataset.tokenPath || "~/.simpletuner/cloud/admin_token";
    const input = h("input", { type: "password", id: "login-token", name: "token", autocomplete: "off", spellcheck: "false", required: true });
    const result = h("div", { id: "login-result", "aria-live": "polite" });
    const form = h(
      "form",
      { id: "login-form", class: "card narrow" },
      field("Login link or admin token", input, `The link \`simpletuner server\` printed, or the token in ${tokenPath} on the server.`),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "login-submit" }, "Sign in")),
      result,
    );
    root.append(
      h("h2", { tabindex: "-1" }, "Sign in"),
      signedIn
        ? h("p", { class: "message ok", id: "login-state" }, "This browser can already use the Cloud tab. ", h("a", { href: "#/overview" }, "Go to the overview"), ".")
        : h(
            "p",
            { id: "login-state" },
            "This browser is not on the server's own machine, so the Cloud tab needs this server's admin token. It is kept in a session cookie (HttpOnly, SameSite=Strict) that holds a value derived from the token, not the token.",
          ),
      form,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const token = tokenFrom(input.value);
      if (!token) return say(result, "bad", "Paste the login link or the token first.");
      say(result, "muted", "Checking the token…");
      const check = await api("GET", "api/cloud/providers", undefined, { Authorization: `Bearer ${token}` });
      if (check.status === 401) {
        input.value = "";
        return say(result, "bad", "That token is not this server's admin token.", `Use the link \`simpletuner server\` printed, or the token in ${tokenPath}.`);
      }
      if (!check.ok && check.status === 0) return say(result, "bad", "The server did not answer.");
      // The token goes in a POST body (not the address: it would stay in the history); the answer
      // sets the session cookie, and the page loads again signed in.
      const signed = await api("POST", "login", { token });
      if (!signed.ok) return say(result, "bad", signed.status === 0 ? "The server did not answer." : "That token is not this server's admin token.");
      input.value = "";
      history.replaceState(null, "", "#/overview");
      location.reload();
    });
  },
};
