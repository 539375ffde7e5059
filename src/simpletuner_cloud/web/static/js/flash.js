// A message for the next view (the submit's warnings, shown on the job page it opens).

let pending = [];

export function setFlash(lines) {
  pending = lines.filter(Boolean);
}

export function takeFlash() {
  const lines = pending;
  pending = [];
  return lines;
}
