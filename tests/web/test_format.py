"""`static/js/format.js` in the browser that runs it: money from the API's decimal strings is exact
(no float rounding), formatted like the CLI (cents from a dollar up, four decimals below); sizes in
binary units; durations; the log's line cap. Each case is one the float version got wrong or one
the views rely on."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import Tab

CASES = """async () => {
  const f = await import('./static/js/format.js');
  return {
    micros: [f.toMicros('0.000975'), f.toMicros('3.51'), f.toMicros(0.1 + 0.2), f.toMicros('12.0000005'),
             f.toMicros('-1.5'), f.toMicros(''), f.toMicros(null), f.toMicros('abc')].map(String),
    money: [f.money('3.51'), f.money('1234567.891'), f.money('0.001226'), f.money('0.00005'), f.money('0'),
            f.money(0.0), f.money(null), f.money('0.99995'), f.money('0.999995')],
    dollars: [f.dollars('25'), f.dollars(25.5), f.dollars('0.005')],
    perHour: f.perHour('3.51'),
    costOf: [String(f.costOf('3.51', 3600)), String(f.costOf('3.51', 1.257)),
             String(f.costOf('5.04', 0.0004))],
    sum: f.formatMicros(f.toMicros('0.1') + f.toMicros('0.2')),
    fraction: [f.fraction('25', '100'), f.fraction('1', '0'), f.fraction('150', '100')],
    bytes: [f.bytes(0), f.bytes(1023), f.bytes(33678), f.bytes(104857600), f.bytes(null)],
    duration: [f.duration(45), f.duration(185), f.duration(7440), f.duration(3 * 86400 + 4 * 3600),
               f.duration(null)],
    number: [f.number(0.1283), f.number(0.0001), f.number(1.23456789), f.number(null)],
    count: f.count(1234567),
  };
}"""


def test_money_sizes_and_times_format_exactly(tab: Tab) -> None:
    page: Any = tab.open("overview")
    assert page.evaluate(CASES) == {
        "micros": ["975", "3510000", "300000", "12000001", "-1500000", "null", "null", "null"],
        "money": [
            "$3.51",
            "$1,234,567.89",
            "$0.0012",
            "$0.000050",
            "$0.0000",
            "$0.0000",
            "—",
            "$1.00",
            "$1.00",
        ],
        "dollars": ["$25.00", "$25.50", "$0.01"],
        "perHour": "$3.51/h",
        "costOf": ["3510000", "1225", "0"],
        "sum": "$0.3000",
        "fraction": [0.25, None, 1.5],
        "bytes": ["0 B", "1023 B", "32.9 KiB", "100.0 MiB", "—"],
        "duration": ["45 s", "3 min 05 s", "2 h 04 min", "3 d 4 h", "—"],
        "number": ["0.1283", "1.00e-4", "1.235", "—"],
        "count": "1,234,567",
    }
