#!/usr/bin/env python3
"""Python multiprocessing side of the benchmarks.

Same subcommands, arguments and output as mproc_bench / raw_bench: one
number in the benchmark's unit on stdout.

    py_bench.py start_join fork|spawn|forkserver ITERS
    py_bench.py scale fork|spawn N ROUNDS
    py_bench.py live fork|spawn|forkserver NALIVE ITERS
    py_bench.py pipe_small NMSGS | queue_small NMSGS | bulk NMSGS
    py_bench.py lock ITERS | pool NTASKS CHUNKSIZE [WORKERS]
    py_bench.py lock_contend NPROCS ITERS | queue_mpmc NPAIRS NMSGS

BENCH_TOUCH_MIB=N in the environment: the parent first touches N MiB of
private memory (as bench_util.h's bench_touch_memory).

Everything that is not about starting processes uses the fork context,
Python's fastest (and Linux's default before 3.14), so the baseline is
Python at its best.  The clock starts and stops at the same points as in
the C programs.
"""
import mmap
import multiprocessing as mp
import os
import statistics
import sys
import time

SMALL = 64
BULK = 1 << 20


def empty():
    pass


def square(x):
    return x * x


BATCHES = 10  # as BENCH_BATCHES in bench_util.h: the median batch counts


def start_join(method, iters):
    ctx = mp.get_context(method)
    for _ in range(2):  # warm: imports, resource tracker, page cache
        p = ctx.Process(target=empty)
        p.start()
        p.join()
    per = max(1, iters // BATCHES)
    batches = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(per):
            p = ctx.Process(target=empty)
            p.start()
            p.join()
            if p.exitcode != 0:
                raise SystemExit("child exit code %r" % p.exitcode)
        batches.append((time.perf_counter() - t0) / per * 1e6)
    return statistics.median(batches)


def scale(method, n, rounds):
    ctx = mp.get_context(method)
    p = ctx.Process(target=empty)
    p.start()
    p.join()
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ps = [ctx.Process(target=empty) for _ in range(n)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        per_round.append((time.perf_counter() - t0) / n * 1e6)
        if any(p.exitcode != 0 for p in ps):
            raise SystemExit("a child failed")
    return statistics.median(per_round)


def touch_memory():
    """As bench_util.h: N MiB of private, small-page memory, written."""
    n = int(os.environ.get("BENCH_TOUCH_MIB", "0")) << 20
    if n == 0:
        return None
    m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        m.madvise(mmap.MADV_NOHUGEPAGE)
    chunk = b"\1" * (1 << 20)
    for off in range(0, n, len(chunk)):
        m[off:off + len(chunk)] = chunk
    return m


def _block():
    while True:
        time.sleep(3600)


def live(method, nalive, iters):
    """start+join of one more process while nalive others are alive."""
    ctx = mp.get_context(method)
    blockers = [ctx.Process(target=_block, daemon=True) for _ in range(nalive)]
    for p in blockers:
        p.start()
    v = start_join(method, iters)
    for p in blockers:
        p.terminate()
    for p in blockers:
        p.join()
    return v


# Contention: as mproc_bench, the children meet the parent at a Barrier,
# read the clock before and after their share and report both readings;
# the time is from the earliest start to the latest end.
def _group_child(work, obj, go, n, times):
    go.wait()
    t0 = time.perf_counter()  # CLOCK_MONOTONIC on Linux: one clock for all
    work(obj, n)
    times.put((t0, time.perf_counter()))


def _group(works, obj, n):
    ctx = mp.get_context("fork")
    go, times = ctx.Barrier(len(works) + 1), ctx.Queue()
    ps = [ctx.Process(target=_group_child, args=(w, obj, go, n, times)) for w in works]
    for p in ps:
        p.start()
    go.wait()
    readings = [times.get() for _ in ps]
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise SystemExit("a child failed")
    return max(r[1] for r in readings) - min(r[0] for r in readings)


def _lock_work(lk, n):
    acquire, release = lk.acquire, lk.release
    for _ in range(n):
        acquire()
        release()


def lock_contend(nprocs, iters):
    t = _group([_lock_work] * nprocs, mp.get_context("fork").Lock(), iters)
    return t / (nprocs * iters) * 1e9


def _put_work(q, n):
    msg, put = b"x" * SMALL, q.put
    for _ in range(n):
        put(msg)


def _get_work(q, n):
    get = q.get
    for _ in range(n):
        if len(get()) != SMALL:
            raise SystemExit("bad message")


def queue_mpmc(npairs, nmsgs):
    each = max(1, nmsgs // npairs)
    q = mp.get_context("fork").Queue()
    t = _group([_put_work] * npairs + [_get_work] * npairs, q, each)
    return each * npairs / t


def _stream_reader(conn, nmsgs, size):
    buf = bytearray(size)
    conn.send_bytes(b"r")
    if size > SMALL:
        # recv_bytes_into reuses one buffer: the fastest way Python offers.
        for _ in range(nmsgs):
            conn.recv_bytes_into(buf)
    else:
        for _ in range(nmsgs):
            conn.recv_bytes()
    conn.send_bytes(b"d")


def stream(nmsgs, size):
    """Seconds to deliver nmsgs messages over Pipe() (a duplex socketpair),
    from the first send to the reader's "done"."""
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    p = ctx.Process(target=_stream_reader, args=(b, nmsgs, size))
    p.start()
    b.close()
    a.recv_bytes()
    msg = b"x" * size
    send = a.send_bytes
    t0 = time.perf_counter()
    for _ in range(nmsgs):
        send(msg)
    a.recv_bytes()
    t = time.perf_counter() - t0
    p.join()
    return t


def _queue_reader(q, done, nmsgs):
    done.send_bytes(b"r")
    get = q.get
    for _ in range(nmsgs):
        get()
    done.send_bytes(b"d")


def queue_small(nmsgs):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    a, b = ctx.Pipe()
    p = ctx.Process(target=_queue_reader, args=(q, b, nmsgs))
    p.start()
    a.recv_bytes()
    msg = b"x" * SMALL
    put = q.put
    t0 = time.perf_counter()
    for _ in range(nmsgs):
        put(msg)
    a.recv_bytes()
    t = time.perf_counter() - t0
    p.join()
    return nmsgs / t


def lock(iters):
    lk = mp.get_context("fork").Lock()
    acquire, release = lk.acquire, lk.release
    for _ in range(1000):
        acquire()
        release()
    t0 = time.perf_counter()
    for _ in range(iters):
        acquire()
        release()
    return (time.perf_counter() - t0) / iters * 1e9


def pool(ntasks, chunksize, workers=2):
    # The pool is started and warmed before the clock: the benchmark is
    # map's throughput, not worker start-up.
    with mp.get_context("fork").Pool(workers) as pl:
        pl.map(square, range(100), chunksize=1)
        t0 = time.perf_counter()
        res = pl.map(square, range(ntasks), chunksize=chunksize)
        t = time.perf_counter() - t0
    if len(res) != ntasks or res[-1] != (ntasks - 1) ** 2:
        raise SystemExit("pool result wrong")
    return ntasks / t


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd, args = argv[1], argv[2:]
    keep = touch_memory()  # noqa: F841 (held until exit)

    def num(i, dflt):
        return int(args[i]) if len(args) > i else dflt

    if cmd == "start_join":
        v = start_join(args[0], num(1, 100))
    elif cmd == "scale":
        v = scale(args[0], num(1, 1), num(2, 1))
    elif cmd == "live":
        v = live(args[0], num(1, 1), num(2, 100))
    elif cmd == "lock_contend":
        v = lock_contend(num(0, 2), num(1, 100000))
    elif cmd == "queue_mpmc":
        v = queue_mpmc(num(0, 4), num(1, 100000))
    elif cmd == "pipe_small":
        n = num(0, 100000)
        v = n / stream(n, SMALL)
    elif cmd == "queue_small":
        v = queue_small(num(0, 100000))
    elif cmd == "bulk":
        n = num(0, 1000)
        v = n * BULK / stream(n, BULK) / 1e9
    elif cmd == "lock":
        v = lock(num(0, 1000000))
    elif cmd == "pool":
        v = pool(num(0, 100000), num(1, 1), num(2, 2))
    else:
        raise SystemExit("py_bench: unknown benchmark %r" % cmd)
    print("%.6g" % v)


if __name__ == "__main__":
    main(sys.argv)
