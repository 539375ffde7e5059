// Shared formatting of money, sizes, counts and times. Money arrives as decimal strings (jobs) or
// JSON numbers (billing); it is held as whole micro-dollars in a BigInt, so sums and products are
// exact, and turned into text only for display.

const MICROS = 1_000_000n;

/** "3.51" / 3.51 / "0.000975" -> 3510000n micro-dollars (half-up past the sixth decimal); null if absent. */
export function toMicros(value) {
  if (value === null || value === undefined || value === "") return null;
  const text = typeof value === "number" ? value.toFixed(7) : String(value).trim();
  const match = /^(-)?(\d*)(?:\.(\d*))?$/.exec(text);
  if (!match || (match[2] === "" && !match[3])) return null;
  const digits = (match[3] || "").padEnd(7, "0");
  let micros = BigInt(match[2] || "0") * MICROS + BigInt(digits.slice(0, 6));
  if (Number(digits[6]) >= 5) micros += 1n;
  return match[1] ? -micros : micros;
}

function grouped(whole) {
  return whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** |micros| rounded half-up to `decimals` places, in units of 10^-decimals. */
function roundedAbs(micros, decimals) {
  const abs = micros < 0n ? -micros : micros;
  const step = 10n ** BigInt(6 - decimals);
  return (abs + step / 2n) / step;
}

function fixed(micros, decimals) {
  const negative = micros < 0n;
  const rounded = roundedAbs(micros, decimals);
  const unit = 10n ** BigInt(decimals);
  const whole = rounded / unit;
  const fraction = decimals ? "." + (rounded % unit).toString().padStart(decimals, "0") : "";
  return `${negative ? "-" : ""}$${grouped(whole)}${fraction}`;
}

/** How many decimals `money` shows: cents from a dollar up, four below, six for tiny costs. */
function moneyDecimals(micros) {
  const abs = micros < 0n ? -micros : micros;
  if (abs >= MICROS - 50n) return 2; // $0.99995 rounds to a dollar: show it as one
  if (abs === 0n || abs >= 100n) return 4;
  return 6;
}

/** The decimals a set amount was written with ($0.285: 3), at least 2 and at most 4. */
function ownDecimals(micros) {
  let decimals = 6;
  let rest = micros < 0n ? -micros : micros;
  while (decimals > 2 && rest % 10n === 0n) {
    rest /= 10n;
    decimals -= 1;
  }
  return Math.min(decimals, 4);
}

/** People's money: cents from a dollar up ($3.51), four decimals below ($0.0012), six for tiny costs. */
export function formatMicros(micros) {
  if (micros === null || micros === undefined) return "—";
  return fixed(micros, moneyDecimals(micros));
}

export function money(value) {
  return formatMicros(toMicros(value));
}

/** A limit or a price as people set it: cents ($25.00), or the decimals it was set with up to four
 * ($0.285, not $0.29). */
export function dollars(value) {
  const micros = toMicros(value);
  return micros === null ? "—" : fixed(micros, ownDecimals(micros));
}

const order = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** Spend against a limit, as text that never contradicts what is true: the spend as `money` shows it
 * and the limit as `dollars` does, unless rounding would show them equal, or in the wrong order,
 * when they are not; then both with as many decimals as it takes. The share is rounded down, so 100%
 * means the limit is reached and 80% means 80% is. */
export function againstLimit(spent, limit) {
  const a = toMicros(spent);
  const b = toMicros(limit);
  if (a === null || b === null) return { spent: money(spent), limit: dollars(limit), percent: null };
  const shown = (micros, decimals) => (micros < 0n ? -1n : 1n) * roundedAbs(micros, decimals) * 10n ** BigInt(6 - decimals);
  let spentDecimals = moneyDecimals(a);
  let limitDecimals = ownDecimals(b);
  if (order(shown(a, spentDecimals), shown(b, limitDecimals)) !== order(a, b)) {
    let decimals = Math.max(spentDecimals, limitDecimals);
    while (decimals < 6 && order(shown(a, decimals), shown(b, decimals)) !== order(a, b)) decimals += 1;
    spentDecimals = limitDecimals = decimals;
  }
  return {
    spent: fixed(a, spentDecimals),
    limit: fixed(b, limitDecimals),
    percent: b > 0n ? Number((a * 100n) / b) : null,
  };
}

export function perHour(value) {
  const micros = toMicros(value);
  return micros === null ? "—" : `${fixed(micros, 2)}/h`;
}

/** What `seconds` of time cost at `usdPerHour` (a decimal string): micro-dollars, exact to the ms. */
export function costOf(usdPerHour, seconds) {
  const rate = toMicros(usdPerHour);
  if (rate === null || seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  return (rate * BigInt(Math.max(0, Math.round(seconds * 1000)))) / 3_600_000n;
}

/** part / whole as a plain number, for a gauge's width (display only). */
export function fraction(part, whole) {
  const a = typeof part === "bigint" ? part : toMicros(part);
  const b = typeof whole === "bigint" ? whole : toMicros(whole);
  if (a === null || b === null || b === 0n) return null;
  return Number((a * 10_000n) / b) / 10_000;
}

export function count(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

/** Binary sizes, as the 100 MiB limit is written. */
export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function percent(value, digits = 0) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(digits)}%`;
}

/** Loss and learning-rate readings: a few significant digits, exponent form when tiny. */
export function number(value) {
  if (value === null || value === undefined || !Number.isFinite(Number(value))) return "—";
  const n = Number(value);
  if (n !== 0 && Math.abs(n) < 0.001) return n.toExponential(2);
  return String(Number(n.toPrecision(4)));
}

const pad = (n) => String(n).padStart(2, "0");

/** Local time, `2026-12-01 08:13:56`: sortable, the same in every locale. */
export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** 45 s, 3 min 05 s, 2 h 04 min, 3 d 4 h. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  let s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return `${s} s`;
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  s -= minutes * 60;
  if (d) return `${d} d ${hours} h`;
  if (hours) return `${hours} h ${pad(minutes)} min`;
  return `${minutes} min ${pad(s)} s`;
}

/** How long ago, to the unit that matters: 40 s ago, 12 min ago, 3 h ago, 2 d ago. */
export function ago(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = (now - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "—";
  if (seconds < 5) return "just now"; // a clock a little ahead of the server's, too
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

/** A `<time>` element: local time as text, the exact instant as its machine value and tooltip. */
export function timeNode(iso, text) {
  const node = document.createElement("time");
  if (!iso) {
    node.textContent = "—";
    return node;
  }
  node.dateTime = iso;
  node.title = new Date(iso).toString();
  node.textContent = text ?? dateTime(iso);
  return node;
}
