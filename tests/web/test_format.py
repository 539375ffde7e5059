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
    dollars: [f.dollars('25'), f.dollars(25.5), f.dollars('0.005'), f.dollars('0.285'), f.dollars('1.23456'),
              f.dollars('0.000001')],
    againstLimit: [['0.2849', '0.285'], ['0.2851', '0.285'], ['24.996', '25'], ['25.004', '25'],
                   ['25', '25'], ['0', '20'], ['1.2846', '1.2845'], ['19.999', '20'],
                   ['0.0000004', '0.000001'], ['1', null]]
      .map(([spent, limit]) => f.againstLimit(spent, limit)),
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
        "dollars": ["$25.00", "$25.50", "$0.005", "$0.285", "$1.2346", "$0.0000"],
        # Spend against a limit: never shown equal when they are not, nor in the wrong order; the
        # share rounded down (99% is not reached, 100% is).
        "againstLimit": [
            {"spent": "$0.2849", "limit": "$0.285", "percent": 99},
            {"spent": "$0.2851", "limit": "$0.285", "percent": 100},
            {"spent": "$24.996", "limit": "$25.000", "percent": 99},
            {"spent": "$25.004", "limit": "$25.000", "percent": 100},
            {"spent": "$25.00", "limit": "$25.00", "percent": 100},
            {"spent": "$0.0000", "limit": "$20.00", "percent": 0},
            {"spent": "$1.2846", "limit": "$1.2845", "percent": 100},
            {"spent": "$19.999", "limit": "$20.000", "percent": 99},
            {"spent": "$0.000000", "limit": "$0.000001", "percent": 0},
            {"spent": "$1.00", "limit": "—", "percent": None},
        ],
        "perHour": "$3.51/h",
        "costOf": ["3510000", "1225", "0"],
        "sum": "$0.3000",
        "fraction": [0.25, None, 1.5],
        "bytes": ["0 B", "1023 B", "32.9 KiB", "100.0 MiB", "—"],
        "duration": ["45 s", "3 min 05 s", "2 h 04 min", "3 d 4 h", "—"],
        "number": ["0.1283", "1.00e-4", "1.235", "—"],
        "count": "1,234,567",
    }
