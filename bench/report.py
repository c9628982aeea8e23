#!/usr/bin/env python3
"""Prints the table of ratios from one benchmark run (scripts/bench.sh).

Reads the JSON lines of pp_bench, pp_bench_raw and peer_python.py, and
prints, as Markdown: per case and start context, procpool next to
multiprocessing.Pool and ProcessPoolExecutor on the same context, the ratio
to mp.Pool, the target and whether it is met; then the checks against the
machine's raw limits; then the raw limits themselves.

A measure that appears more than once (scripts/bench.sh runs each case's
two sides in rounds, alternating) counts by its median; the ratio is the
median's, and the table also shows the lowest and highest ratio of one
round (the n-th procpool value against the n-th mp.Pool value).

Ratios read "how many times better procpool is": throughput over
throughput, and time over time the other way round.

Usage: report.py RESULTS.jsonl
"""

import json
import statistics
import sys

CONTEXTS = ("fork", "spawn", "forkserver")
POOL, EXECUTOR = "mp.Pool", "ProcessPoolExecutor"

# case: (lower is better, minimum ratio to mp.Pool or None, note)
CASES = [
    ("startup_ms", True, None, "fork, spawn: >= 10x Python's same context"),
    ("apply_rtt_us", True, 2.0, ">= 2x Python; see the raw check below"),
    ("apply_async_per_s", False, 20.0, ">= 20x mp.Pool"),
    ("map_default_per_s", False, 30.0, ">= 30x mp.Pool"),
    ("map_task_default_per_s", False, 30.0,
     ">= 30x mp.Pool map (a records task: pp_register_records)"),
    ("map_chunk1_per_s", False, 10.0, ">= 10x mp.Pool"),
    ("imap_c1000_per_s", False, 20.0, ">= 20x mp.Pool"),
    ("imap_unordered_c1000_per_s", False, 20.0, ">= 20x mp.Pool"),
    ("imap_many_c1000_per_s", False, 20.0,
     ">= 20x mp.Pool imap (batches: pp_iter_next_many)"),
    ("imap_unordered_many_c1000_per_s", False, 20.0,
     ">= 20x mp.Pool imap_unordered (batches: pp_iter_next_many)"),
    ("imap_c1_per_s", False, None,
     "(imap's default chunk size, 1: no target in the issue)"),
    ("payload_roundtrip_MiB_per_s", False, 10.0,
     ">= 10x mp.Pool and >= 5 GiB/s"),
    ("cpu_speedup", False, None, ">= 1.95x on 2 cores"),
    ("imap_peak_rss_MiB_small", True, None, "(1 M items in a full run)"),
    ("imap_peak_rss_MiB_large", True, None,
     "(100 M items in a full run; see below)"),
]
# procpool cases measured against another case of the peers: Python has no
# records task (its map calls a function per item) and no call that takes
# results by the batch, so its map and its imap are the measures.
PEER_CASE = {
    "map_task_default_per_s": "map_default_per_s",
    "imap_many_c1000_per_s": "imap_c1000_per_s",
    "imap_unordered_many_c1000_per_s": "imap_unordered_c1000_per_s",
}
STARTUP_TARGET = {"fork": 10.0, "spawn": 10.0}
PAYLOAD_MIN_MIB = 5 * 1024.0
CPU_TARGET = 1.95
RSS_TARGET = 1.5


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "items/s":
        if value >= 1e6:
            return "%.2f M/s" % (value / 1e6)
        return "%.1f k/s" % (value / 1e3)
    if unit == "us":
        return "%.1f µs" % value
    if unit == "ms":
        return "%.2f ms" % value
    if unit == "x":
        return "%.2fx" % value
    if unit in ("MiB", "MiB/s"):
        return "%.0f %s" % (value, unit) if value >= 100 else \
            "%.1f %s" % (value, unit)
    return "%g %s" % (value, unit)


def ratio_text(r):
    return "-" if r is None else "%.2fx" % r


def load(path):
    """(peer, ctx, case) -> ([values in the order measured], unit)."""
    data = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
                key = (d["peer"], d["ctx"], d["case"])
                value, unit = float(d["value"]), d["unit"]
            except (ValueError, KeyError, TypeError) as e:
                sys.exit("report.py: %s:%d: not a result line (%s)"
                         % (path, n, e))
            values, first_unit = data.setdefault(key, ([], unit))
            if unit != first_unit:
                sys.exit("report.py: %s:%d: %s in %s, earlier in %s"
                         % (path, n, "/".join(key), unit, first_unit))
            values.append(value)
    return data


def ratio_of(pp, py, lower):
    """How many times better procpool is; None without both values."""
    if not (pp and py):
        return None
    return py / pp if lower else pp / py


def round_ratios(pp_values, py_values, lower):
    """The ratio of each round: the n-th value of one side against the
    n-th of the other (both sides are measured in the same order)."""
    pairs = zip(pp_values, py_values)
    return [r for r in (ratio_of(pp, py, lower) for pp, py in pairs)
            if r is not None]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS.jsonl")
    data = load(sys.argv[1])

    def get(peer, ctx, case):
        v = data.get((peer, ctx, case))
        return (statistics.median(v[0]), v[1]) if v else (None, None)

    def values(peer, ctx, case):
        v = data.get((peer, ctx, case))
        return v[0] if v else []

    contexts = [c for c in CONTEXTS if any(k[1] == c for k in data)]
    missing = [c for c in contexts
               if not any(k[0] == "procpool" and k[1] == c for k in data)]
    verdicts = []  # (what, met)

    print("| case | ctx | procpool | mp.Pool | ProcessPoolExecutor "
          "| vs mp.Pool | per round | target | met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, lower, minimum, note in CASES:
        for ctx in contexts:
            pp, unit = get("procpool", ctx, case)
            peer_case = PEER_CASE.get(case, case)
            py, py_unit = get(POOL, ctx, peer_case)
            ex, ex_unit = get(EXECUTOR, ctx, peer_case)
            if pp is None and py is None:
                continue
            ratio = ratio_of(pp, py, lower)
            rounds = round_ratios(values("procpool", ctx, case),
                                  values(POOL, ctx, peer_case), lower)
            spread = "-"
            if len(rounds) > 1:
                spread = "%.1f–%.1fx" % (min(rounds), max(rounds))
            target, met = note, ""
            if case == "startup_ms":
                t = STARTUP_TARGET.get(ctx)
                target = ">= %gx Python %s" % (t, ctx) if t else "-"
                if t and ratio is not None:
                    met = ratio >= t
            elif case == "cpu_speedup":
                if pp is not None:
                    met = pp >= CPU_TARGET
            elif case == "payload_roundtrip_MiB_per_s":
                if ratio is not None:
                    met = ratio >= minimum and pp >= PAYLOAD_MIN_MIB
            elif minimum is not None and ratio is not None:
                met = ratio >= minimum
            if met != "":
                verdicts.append(("%s (%s)" % (case, ctx), met))
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                case, ctx, fmt(pp, unit), fmt(py, py_unit or unit),
                fmt(ex, ex_unit or unit), ratio_text(ratio), spread, target,
                "" if met == "" else ("yes" if met else "**no**")))

    print()
    print("| check | ctx | value | target | met |")
    print("|---|---|---|---|---|")
    raw, _ = get("raw", "-", "pingpong_cross_core_us")
    for ctx in contexts:
        pp, _ = get("procpool", ctx, "apply_rtt_us")
        if pp is not None and raw:
            r = pp / raw
            met = r <= 1.0
            verdicts.append(("apply_rtt_us vs raw (%s)" % ctx, met))
            print("| apply_rtt_us / raw cross-core ping-pong | %s | %.2fx "
                  "(%.1f / %.1f µs) | <= 1.0x | %s |"
                  % (ctx, r, pp, raw, "yes" if met else "**no**"))
    for peer in ("procpool", POOL, EXECUTOR):
        for ctx in contexts:
            small, _ = get(peer, ctx, "imap_peak_rss_MiB_small")
            large, _ = get(peer, ctx, "imap_peak_rss_MiB_large")
            if small and large:
                r = large / small
                met = r <= RSS_TARGET
                if peer == "procpool":
                    verdicts.append(("imap_peak_rss (%s)" % ctx, met))
                print("| %s imap peak RSS, large / small input | %s | "
                      "%.2fx (%.1f / %.1f MiB) | %s | %s |"
                      % (peer, ctx, r, large, small,
                         "<= %.1fx" % RSS_TARGET if peer == "procpool"
                         else "-",
                         ("yes" if met else "**no**")
                         if peer == "procpool" else "-"))

    print()
    print("| raw limit | value |")
    print("|---|---|")
    for case in ("pingpong_same_core_us", "pingpong_cross_core_us",
                 "pipe_stream_MiB_per_s", "memcpy_MiB_per_s", "fork_exit_ms",
                 "spawn_self_ms"):
        v, unit = get("raw", "-", case)
        if v is not None:
            print("| %s | %s |" % (case, fmt(v, unit)))

    print()
    met = sum(1 for _, m in verdicts if m)
    print("Targets met: %d of %d." % (met, len(verdicts)))
    # The issue's own targets: the rows measured against a case of their
    # own name (PEER_CASE rows are extra ways of doing the same work).
    own = [m for what, m in verdicts if what.split(" ")[0] not in PEER_CASE]
    print("Of them, the issue's own (without the rows measured against "
          "another case): %d of %d." % (sum(1 for m in own if m), len(own)))
    if missing:
        print("Contexts without procpool results (not offered yet, or "
              "failed): %s." % ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
