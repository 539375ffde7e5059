// The Cloud tab's entry point: wire the buttons, then load every card.
import { loadConfigs } from "./datasets.js";
import { deleteToken, loadBilling, loadHardware, loadProvider, loadStatus, saveToken, validate } from "./provider.js";
import { loadSettings, saveSettings } from "./settings.js";

async function refresh() {
  await Promise.all([loadProvider(), loadBilling()]);
}

document.getElementById("validate").addEventListener("click", validate);
document.getElementById("token-form").addEventListener("submit", saveToken);
document.getElementById("token-delete").addEventListener("click", deleteToken);
document.getElementById("settings-form").addEventListener("submit", (event) => saveSettings(event, refresh));

const hardware = await loadHardware();
await Promise.all([refresh(), loadSettings(hardware), loadStatus(), loadConfigs()]);
document.body.dataset.ready = "true";
