#!/usr/bin/env python3
"""cron_oracle.py - an independent answer key for the cron_next tables in test_cron.c.

It shares no code with betpipe: time zones come from python's zoneinfo, and the search walks
matching days and minutes one by one, working out for each matching wall-clock minute which
instants it names (fold=0/fold=1) and applying the DST rules written in core/src/cron.h:

  - a minute that exists once fires then;
  - a minute skipped by a gap fires at the instant the gap ends;
  - a minute repeated by an overlap fires at both instants if the minute or hour field starts
    with '*', else only at the first.

Usage: python3 tests/unit/cron_oracle.py   (prints one line per case: expected instant or NOTFOUND)
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("dom", 1, 31), ("month", 1, 12), ("dow", 0, 7)]
NAMES = {
    3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    4: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}


def value(i, s):
    if s.isdigit():
        return int(s)
    base = 1 if i == 3 else 0
    return NAMES[i].index(s.upper()) + base


def field(i, text):
    lo_f, hi_f = FIELDS[i][1], FIELDS[i][2]
    star_hi = 6 if i == 4 else hi_f
    out = set()
    for item in text.split(","):
        step = 1
        if "/" in item:
            item, st = item.split("/")
            step = int(st)
        if item == "*":
            lo, hi = lo_f, star_hi
        elif "-" in item:
            a, b = item.split("-")
            lo, hi = value(i, a), value(i, b)
        else:
            lo = hi = value(i, item)
            if step != 1:
                hi = star_hi
        out.update(range(lo, hi + 1, step))
    if i == 4 and 7 in out:
        out.discard(7)
        out.add(0)
    return out


def parse(expr):
    expr = MACROS.get(expr.lower(), expr)
    parts = expr.split()
    sets = [field(i, p) for i, p in enumerate(parts)]
    return sets, parts[2][0] == "*", parts[4][0] == "*", parts[0][0] == "*" or parts[1][0] == "*"


def day_ok(sets, dom_star, dow_star, d):
    if d.month not in sets[3]:
        return False
    dom = d.day in sets[2]
    dow = (d.weekday() + 1) % 7 in sets[4]
    return (dom and dow) if (dom_star or dow_star) else (dom or dow)


def instants(z, wall):
    """The fire instants of one matching wall-clock minute, and whether it is a gap."""
    u0 = int(wall.replace(tzinfo=z, fold=0).timestamp())
    u1 = int(wall.replace(tzinfo=z, fold=1).timestamp())
    real = [u for u in sorted({u0, u1})
            if datetime.fromtimestamp(u, z).replace(tzinfo=None) == wall]
    if real:
        return real, False
    # In a gap: fold=0 used the offset before the change, fold=1 the one after; the change
    # lies between. Find the first second with the new offset.
    lo, hi = min(u0, u1), max(u0, u1)
    before = datetime.fromtimestamp(lo, z).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, z).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return [hi], True


def next_fire(expr, zone, after_iso, max_days=366 * 9):
    sets, dom_star, dow_star, real_time = parse(expr)
    z = ZoneInfo(zone)
    after = int(datetime.fromisoformat(after_iso.replace("Z", "+00:00")).timestamp())
    start = datetime.fromtimestamp(after, z).replace(tzinfo=None) - timedelta(hours=3)
    day = datetime(start.year, start.month, start.day)
    best = None
    for _ in range(max_days):
        if best is not None and (day - timedelta(days=2)).replace(tzinfo=timezone.utc) \
                .timestamp() > best:
            break
        if day_ok(sets, dom_star, dow_star, day):
            for h in sorted(sets[1]):
                for m in sorted(sets[0]):
                    wall = day.replace(hour=h, minute=m)
                    us, _gap = instants(z, wall)
                    if len(us) == 2 and not real_time:
                        us = us[:1]
                    for u in us:
                        if u > after and (best is None or u < best):
                            best = u
        day += timedelta(days=1)
    if best is None:
        return "NOTFOUND"
    return datetime.fromtimestamp(best, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The cases of test_cron.c's next_fire table, in the same order.
CASES = [
    # UTC: rollovers, steps, month ends, leap years, day rules, names, macros
    ("* * * * *", "UTC", "2024-01-01T00:00:00Z"),
    ("* * * * *", "UTC", "2024-01-01T00:00:30Z"),
    ("*/15 * * * *", "UTC", "2024-01-01T00:14:59Z"),
    ("*/15 * * * *", "UTC", "2024-01-01T00:15:00Z"),
    ("5/15 * * * *", "UTC", "2024-01-01T00:50:00Z"),
    ("1-30/5 * * * *", "UTC", "2024-01-01T00:26:00Z"),
    ("0 * * * *", "UTC", "2024-12-31T23:00:00Z"),
    ("0 0 1 1 *", "UTC", "2024-06-01T00:00:00Z"),
    ("0 0 31 * *", "UTC", "2024-01-31T00:00:00Z"),
    ("0 0 31 * *", "UTC", "2024-03-31T00:00:00Z"),
    ("0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z"),
    ("0 0 29 2 *", "UTC", "2024-02-29T00:00:00Z"),
    ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z"),
    ("0 0 30 2 *", "UTC", "2024-01-01T00:00:00Z"),
    ("0 0 31 4,6,9,11 *", "UTC", "2024-01-01T00:00:00Z"),
    ("0 0 1 * MON", "UTC", "2024-08-27T00:00:00Z"),
    ("0 0 1 * MON", "UTC", "2024-09-01T00:00:00Z"),
    ("0 0 */2 * MON", "UTC", "2024-09-01T00:00:00Z"),
    ("0 0 13 * FRI", "UTC", "2024-09-06T00:00:00Z"),
    ("0 0 * * 7", "UTC", "2024-09-02T00:00:00Z"),
    ("30 4 * JAN-MAR mon-fri", "UTC", "2024-03-29T04:30:00Z"),
    ("0 9-17/4 * * 1-5", "UTC", "2024-09-06T17:00:00Z"),
    ("@yearly", "UTC", "2024-01-01T00:00:00Z"),
    ("@weekly", "UTC", "2024-09-01T00:00:00Z"),
    ("@monthly", "UTC", "2024-01-31T12:00:00Z"),
    ("@hourly", "UTC", "2024-01-01T10:59:59Z"),
    ("0 0 * * *", "UTC", "1969-12-31T12:00:00Z"),
    ("0 12 29 2 *", "UTC", "1960-01-01T00:00:00Z"),
    # Europe/London: 2024-03-31 01:00 GMT -> 02:00 BST; 2024-10-27 02:00 BST -> 01:00 GMT
    ("30 1 * * *", "Europe/London", "2024-03-30T12:00:00Z"),
    ("30 1 * * *", "Europe/London", "2024-03-31T01:00:00Z"),
    ("30 1 * * *", "Europe/London", "2024-10-26T12:00:00Z"),
    ("30 1 * * *", "Europe/London", "2024-10-27T00:30:00Z"),
    ("30 1 * * *", "Europe/London", "2024-10-27T00:45:00Z"),
    ("0 1 * * *", "Europe/London", "2024-10-27T00:00:00Z"),
    ("0 * * * *", "Europe/London", "2024-03-31T00:00:00Z"),
    ("0 * * * *", "Europe/London", "2024-03-31T01:00:00Z"),
    ("0 * * * *", "Europe/London", "2024-10-26T23:30:00Z"),
    ("0 * * * *", "Europe/London", "2024-10-27T00:00:00Z"),
    ("0 * * * *", "Europe/London", "2024-10-27T01:00:00Z"),
    ("*/15 * * * *", "Europe/London", "2024-10-27T00:45:00Z"),
    ("*/15 * * * *", "Europe/London", "2024-03-31T00:45:00Z"),
    ("* 1 * * *", "Europe/London", "2024-10-27T00:59:00Z"),
    ("* 1 * * *", "Europe/London", "2024-03-31T00:00:00Z"),
    ("* 1 * * *", "Europe/London", "2024-03-31T01:00:00Z"),
    ("0 1 * * SUN", "Europe/London", "2024-03-30T00:00:00Z"),
    ("0 2 * * *", "Europe/London", "2024-03-30T12:00:00Z"),
    ("30 1 * * *", "Europe/London", "2040-03-24T12:00:00Z"),
    ("30 1 * * *", "Europe/London", "2040-10-27T12:00:00Z"),
    ("30 1 * * *", "Europe/London", "2040-10-28T00:30:00Z"),
    ("0 * * * *", "Europe/London", "2040-10-28T00:00:00Z"),
    # America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST
    ("30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z"),
    ("30 2 * * *", "America/New_York", "2024-03-10T07:00:00Z"),
    ("0 2 * * *", "America/New_York", "2024-03-09T12:00:00Z"),
    ("59 1 * * *", "America/New_York", "2024-03-09T12:00:00Z"),
    ("30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z"),
    ("30 1 * * *", "America/New_York", "2024-11-03T05:30:00Z"),
    ("0 * * * *", "America/New_York", "2024-11-03T05:00:00Z"),
    ("30 2 * * *", "America/New_York", "2040-03-10T12:00:00Z"),
    ("30 1 * * *", "America/New_York", "2040-11-03T12:00:00Z"),
    ("30 1 * * *", "America/New_York", "2040-11-04T05:30:00Z"),
    # Australia/Lord_Howe: half-hour shifts; 2024-10-06 02:00 -> 02:30, 2024-04-07 02:00 -> 01:30
    ("15 2 * * *", "Australia/Lord_Howe", "2024-10-05T00:00:00Z"),
    ("0 * * * *", "Australia/Lord_Howe", "2024-10-05T14:30:00Z"),
    ("0 * * * *", "Australia/Lord_Howe", "2024-10-05T15:30:00Z"),
    ("45 1 * * *", "Australia/Lord_Howe", "2024-04-06T00:00:00Z"),
    ("45 1 * * *", "Australia/Lord_Howe", "2024-04-06T14:45:00Z"),
    ("*/15 * * * *", "Australia/Lord_Howe", "2024-04-06T14:45:00Z"),
]

if __name__ == "__main__":
    for expr, zone, after in CASES:
        print(f'{{"{expr}", "{zone}", "{after}", "{next_fire(expr, zone, after)}"}},')
