#!/usr/bin/env python3
"""The Python side of the benchmark (scripts/bench.sh).

Runs the cases of bench/pool_bench.c with Python's multiprocessing.Pool and
concurrent.futures.ProcessPoolExecutor, 2 worker processes, for each start
context (fork, spawn, forkserver), and prints one JSON line per measurement:

  {"peer": "mp.Pool", "ctx": "fork", "case": "apply_rtt_us", "value": 95.1,
   "unit": "us"}

Only the standard library. The map cases use a list of ints and imap a
generator, which is what Python programs do. Where the executor has no
direct equivalent:
  - map_default_per_s and cpu_speedup give it Pool's default chunk size
    (ceil(n / (4 * workers))): its own default, 1, is the map_chunk1 case;
  - imap_c1000_per_s is executor.map(chunksize=1000) over the generator,
    which reads the whole input up front (Python 3.11), and imap_c1_per_s
    the same with chunksize=1;
  - imap_unordered_c1000_per_s submits one future per 1000 items and takes
    them with as_completed();
  - imap_peak_rss_MiB_large is skipped: executor.map would hold all 100 M
    inputs at once.

Usage: peer_python.py [--quick] [--peer NAME] [--ctx NAME] [--case NAME]
       peer_python.py --list     (every case's name, one per line)
Internal: peer_python.py --rss-child ITEMS CHUNKSIZE PEER CTX CASE
          peer_python.py --startup-child REPS PEER CTX
Notes go to stderr; stdout holds only JSON lines.
"""

import argparse
import concurrent.futures as cf
import itertools
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time

WORKERS = 2
MIB = 1024.0 * 1024.0

FULL = dict(startup_reps=20, apply_calls=2000, async_tasks=100_000,
            map_items=1_000_000, chunk1_items=100_000, imap_items=1_000_000,
            imap_c1_items=20_000,
            payload_buffers=64, payload_bytes=4 << 20, cpu_items=2000,
            cpu_runs=3, rss_small=1_000_000, rss_large=100_000_000,
            rss_chunksize=1000, warmups=1, runs=3, warm_s=0.3)
QUICK = dict(startup_reps=3, apply_calls=200, async_tasks=5000,
             map_items=100_000, chunk1_items=5000, imap_items=100_000,
             imap_c1_items=2000,
             payload_buffers=4, payload_bytes=4 << 20, cpu_items=100,
             cpu_runs=1, rss_small=100_000, rss_large=1_000_000,
             rss_chunksize=1000, warmups=0, runs=1, warm_s=0)

# ---------------------------------------------------------------------------
# Tasks (module level, so that spawned workers can import them)


def noop():
    return None


def square(x):
    return x * x


def square_chunk(xs):
    return [x * x for x in xs]


def identity(b):
    return b


def spin(n):
    # Pure computation, as the C side's xorshift walk.
    x = 88172645463325252
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
    return x


# ---------------------------------------------------------------------------

failures = 0


def emit(peer, ctx, case, value, unit):
    print(json.dumps({"peer": peer, "ctx": ctx, "case": case,
                      "value": round(value, 4), "unit": unit}), flush=True)


def note(msg):
    print("peer_python: " + msg, file=sys.stderr, flush=True)


def counter(n):
    """The imap input: generated one at a time, never held as a whole."""
    i = 0
    while i < n:
        yield i
        i += 1


def default_chunksize(n):
    """Pool's default: ceil(n / (4 * workers))."""
    c, extra = divmod(n, WORKERS * 4)
    return c + 1 if extra else max(c, 1)


def peak_rss_mib():
    """Peak RSS of this process image. On Linux ru_maxrss survives execve()
    and subprocess starts the child inside the parent's memory (vfork), so a
    child would report its parent's peak; VmHWM belongs to the image."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024.0


_spin_loops = None


def spin_loops():
    """Loop count for ~1 ms of spin(), found once (fastest of a few)."""
    global _spin_loops
    if _spin_loops is None:
        loops = 100
        while True:
            t0 = time.perf_counter()
            spin(loops)
            dt = time.perf_counter() - t0
            if dt > 1e-3:
                best = min(dt, *(timed(spin, loops) for _ in range(5)))
                _spin_loops = max(1, int(loops * 1e-3 / best))
                break
            loops *= 2
        note("spin: %d loops for ~1 ms" % _spin_loops)
    return _spin_loops


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------
# The two peers behind one small interface


class PoolPeer:
    name = "mp.Pool"

    def __init__(self, ctx):
        self.ctx = mp.get_context(ctx)

    def create(self):
        self.p = self.ctx.Pool(WORKERS)

    def finish(self):
        self.p.close()
        self.p.join()

    def apply(self, fn, *args):
        return self.p.apply(fn, args)

    def submit(self, fn, *args):
        return self.p.apply_async(fn, args)

    @staticmethod
    def get(r):
        return r.get()

    def map(self, fn, xs, chunksize=None):
        return self.p.map(fn, xs, chunksize)

    def imap(self, fn, gen, chunksize):
        return self.p.imap(fn, gen, chunksize)

    def imap_unordered(self, fn, gen, chunksize):
        return self.p.imap_unordered(fn, gen, chunksize)


class ExecutorPeer:
    name = "ProcessPoolExecutor"

    def __init__(self, ctx):
        self.ctx = mp.get_context(ctx)

    def create(self):
        self.p = cf.ProcessPoolExecutor(WORKERS, mp_context=self.ctx)

    def finish(self):
        self.p.shutdown(wait=True)

    def apply(self, fn, *args):
        return self.p.submit(fn, *args).result()

    def submit(self, fn, *args):
        return self.p.submit(fn, *args)

    @staticmethod
    def get(r):
        return r.result()

    def map(self, fn, xs, chunksize=None):
        if chunksize is None:
            chunksize = default_chunksize(len(xs))
        return list(self.p.map(fn, xs, chunksize=chunksize))

    def imap(self, fn, gen, chunksize):
        return self.p.map(fn, gen, chunksize=chunksize)

    def imap_unordered(self, fn, gen, chunksize):
        assert fn is square
        fs = []
        while True:
            chunk = list(itertools.islice(gen, chunksize))
            if not chunk:
                break
            fs.append(self.p.submit(square_chunk, chunk))
        for f in cf.as_completed(fs):
            yield from f.result()


PEERS = {"mp.Pool": PoolPeer, "ProcessPoolExecutor": ExecutorPeer}

# ---------------------------------------------------------------------------
# Cases


def case_startup(peer, sz):
    t = []
    for _ in range(sz["startup_reps"]):
        t0 = time.perf_counter()
        peer.create()
        peer.apply(noop)
        peer.finish()
        t.append(time.perf_counter() - t0)
    return statistics.median(t) * 1e3, "ms"


def case_apply_rtt(peer, sz):
    for _ in range(50):  # warm up: every worker started
        peer.apply(square, 3)
    t = []
    for _ in range(sz["apply_calls"]):
        t0 = time.perf_counter()
        y = peer.apply(square, 3)
        t.append(time.perf_counter() - t0)
        assert y == 9
    return statistics.median(t) * 1e6, "us"


def case_apply_async(peer, sz):
    n = sz["async_tasks"]
    t0 = time.perf_counter()
    rs = [peer.submit(square, i) for i in range(n)]
    ys = [peer.get(r) for r in rs]
    dt = time.perf_counter() - t0
    assert ys[-1] == (n - 1) ** 2
    return n / dt, "items/s"


def map_case(peer, n, chunksize):
    xs = list(range(n))
    t0 = time.perf_counter()
    ys = peer.map(square, xs, chunksize)
    dt = time.perf_counter() - t0
    assert len(ys) == n and ys[-1] == (n - 1) ** 2
    return n / dt, "items/s"


def case_map_default(peer, sz):
    return map_case(peer, sz["map_items"], None)


def case_map_chunk1(peer, sz):
    return map_case(peer, sz["chunk1_items"], 1)


def run_imap(peer, ordered, n, chunksize):
    it = (peer.imap if ordered else peer.imap_unordered)(
        square, counter(n), chunksize)
    total = count = 0
    for y in it:
        total += y
        count += 1
    assert count == n and total == sum(i * i for i in range(n))


def case_imap(peer, sz):
    n = sz["imap_items"]
    t0 = time.perf_counter()
    run_imap(peer, True, n, 1000)
    return n / (time.perf_counter() - t0), "items/s"


def case_imap_unordered(peer, sz):
    n = sz["imap_items"]
    t0 = time.perf_counter()
    run_imap(peer, False, n, 1000)
    return n / (time.perf_counter() - t0), "items/s"


def case_imap_c1(peer, sz):
    """imap's own default chunk size, 1."""
    n = sz["imap_c1_items"]
    t0 = time.perf_counter()
    run_imap(peer, True, n, 1)
    return n / (time.perf_counter() - t0), "items/s"


def case_payload(peer, sz):
    n, size = sz["payload_buffers"], sz["payload_bytes"]
    buf = bytes((i * 31) & 0xFF for i in range(256)) * (size // 256)
    bufs = [buf] * n
    t0 = time.perf_counter()
    out = peer.map(identity, bufs, 1)
    dt = time.perf_counter() - t0
    assert len(out) == n and out[-1] == buf
    return 2.0 * n * size / MIB / dt, "MiB/s"


def case_cpu(peer, sz):
    """The median of a few runs, as on the C side: one run is at the mercy
    of whatever else the machine does for a moment."""
    n, loops = sz["cpu_items"], spin_loops()
    peer.map(spin, [loops] * (2 * WORKERS), 1)  # warm up: first calls
    ratios = []
    for _ in range(sz["cpu_runs"]):
        t0 = time.perf_counter()
        serial = [spin(loops) for _ in range(n)]
        t_serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        pooled = peer.map(spin, [loops] * n)
        t_pool = time.perf_counter() - t0
        assert pooled == serial
        ratios.append(t_serial / t_pool)
    return statistics.median(ratios), "x"


# (case, function, throughput): a throughput case is run sz["warmups"]
# times untimed, and again until sz["warm_s"] seconds have passed (at most
# WARM_RUNS_MAX runs), then the median of sz["runs"] is taken, as
# pool_bench.c does; the others take their own median.
WARM_RUNS_MAX = 100
STEADY = [("apply_rtt_us", case_apply_rtt, False),
          ("apply_async_per_s", case_apply_async, True),
          ("map_default_per_s", case_map_default, True),
          ("map_chunk1_per_s", case_map_chunk1, True),
          ("imap_c1000_per_s", case_imap, True),
          ("imap_unordered_c1000_per_s", case_imap_unordered, True),
          ("imap_c1_per_s", case_imap_c1, True),
          ("payload_roundtrip_MiB_per_s", case_payload, True),
          ("cpu_speedup", case_cpu, False)]


# The cases run in processes of their own, after the pool's.
FRESH = ["startup_ms", "imap_peak_rss_MiB_small", "imap_peak_rss_MiB_large"]


def measure(fn, peer, sz):
    t0 = time.perf_counter()
    done = 0
    while done < sz["warmups"] or (done < WARM_RUNS_MAX and
                                   time.perf_counter() - t0 < sz["warm_s"]):
        fn(peer, sz)
        done += 1
    values = [fn(peer, sz) for _ in range(sz["runs"])]
    return statistics.median(v for v, _ in values), values[0][1]


def rss_case(peer_name, ctx, case, items, chunksize):
    """Peak RSS of one imap, in a fresh interpreter: the figure is the
    process's lifetime peak."""
    global failures
    if peer_name == "ProcessPoolExecutor" and case.endswith("_large"):
        note("%s/%s/%s: skipped (executor.map reads all %d inputs up front)"
             % (peer_name, ctx, case, items))
        return
    sys.stdout.flush()
    rc = subprocess.call([sys.executable, __file__, "--rss-child", str(items),
                          str(chunksize), peer_name, ctx, case])
    if rc != 0:
        note("%s/%s/%s: the measuring process failed (%d)"
             % (peer_name, ctx, case, rc))
        failures += 1


def startup_case(peer_name, ctx, reps):
    """Start-up in a fresh interpreter, as pool_bench.c does: a process
    that ran the other cases is bigger, and fork copies all of it."""
    global failures
    sys.stdout.flush()
    rc = subprocess.call([sys.executable, __file__, "--startup-child",
                          str(reps), peer_name, ctx])
    if rc != 0:
        note("%s/%s/startup_ms: the measuring process failed (%d)"
             % (peer_name, ctx, rc))
        failures += 1


def startup_child(reps, peer_name, ctx):
    value, unit = case_startup(PEERS[peer_name](ctx),
                               dict(startup_reps=reps))
    emit(peer_name, ctx, "startup_ms", value, unit)


def rss_child(items, chunksize, peer_name, ctx, case):
    peer = PEERS[peer_name](ctx)
    peer.create()
    t0 = time.perf_counter()
    run_imap(peer, True, items, chunksize)
    dt = time.perf_counter() - t0
    peer.finish()
    note("%s/%s/%s: %d items in %.1f s (chunksize %d)"
         % (peer_name, ctx, case, items, dt, chunksize))
    emit(peer_name, ctx, case, peak_rss_mib(), "MiB")


def wanted(only, case):
    return not only or case == only or case.startswith(only + "_")


def run_peer(peer_name, ctx, sz, only):
    global failures
    peer = PEERS[peer_name](ctx)
    try:
        peer.create()
    except (ValueError, OSError) as e:
        note("%s/%s: cannot create: %s; skipped" % (peer_name, ctx, e))
        return
    for case, fn, throughput in STEADY:
        if not wanted(only, case):
            continue
        try:
            value, unit = measure(fn, peer, sz) if throughput else fn(peer, sz)
            emit(peer_name, ctx, case, value, unit)
        except Exception as e:  # report, go on with the other cases
            note("%s/%s/%s: %r" % (peer_name, ctx, case, e))
            failures += 1
    peer.finish()
    if wanted(only, "startup_ms"):
        startup_case(peer_name, ctx, sz["startup_reps"])
    for case, items in (("imap_peak_rss_MiB_small", sz["rss_small"]),
                        ("imap_peak_rss_MiB_large", sz["rss_large"])):
        if wanted(only, case):
            rss_case(peer_name, ctx, case, items, sz["rss_chunksize"])


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--startup-child":
        startup_child(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return 0
    if len(sys.argv) == 7 and sys.argv[1] == "--rss-child":
        rss_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
                  sys.argv[5], sys.argv[6])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="every case scaled down (a smoke run)")
    ap.add_argument("--peer", choices=sorted(PEERS), help="only this peer")
    ap.add_argument("--ctx", help="only this start context")
    ap.add_argument("--case", help="only this case (or case prefix)")
    ap.add_argument("--list", action="store_true",
                    help="print every case's name, one per line, and exit")
    args = ap.parse_args()
    if args.list:
        for case in [c for c, _, _ in STEADY] + FRESH:
            print(case)
        return 0
    sz = QUICK if args.quick else FULL
    available = mp.get_all_start_methods()
    for peer_name in PEERS:
        if args.peer and peer_name != args.peer:
            continue
        for ctx in ("fork", "spawn", "forkserver"):
            if args.ctx and ctx != args.ctx:
                continue
            if ctx not in available:
                note("context %s: not on this platform; skipped" % ctx)
                continue
            run_peer(peer_name, ctx, sz, args.case)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
