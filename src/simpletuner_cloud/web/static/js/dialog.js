// A confirmation as a modal <dialog>: focus moves into it and stays there, Escape cancels, and
// focus returns to the button that opened it.
import { h } from "./dom.js";

/** Resolves true when the person confirms. */
export function confirmAction({ title, message, confirm, danger = true }) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const titleId = "confirm-title";
    const yes = h("button", { type: "submit", value: "confirm", class: danger ? "danger" : null, id: "confirm-yes" }, confirm);
    const no = h("button", { type: "submit", value: "cancel", class: "secondary", id: "confirm-no", autofocus: true }, "Keep it");
    const dialog = h(
      "dialog",
      { id: "confirm-dialog", "aria-labelledby": titleId },
      h("form", { method: "dialog" }, h("h2", { id: titleId }, title), h("p", {}, message), h("div", { class: "actions" }, no, yes)),
    );
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "confirm";
      dialog.remove();
      if (opener && typeof opener.focus === "function" && opener.isConnected) opener.focus();
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
