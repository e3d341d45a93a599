#!/usr/bin/env python3
"""Python multiprocessing side of the benchmarks.

Same subcommands, arguments and output as mproc_bench / raw_bench: one
number in the benchmark's unit on stdout.

    py_bench.py start_join fork|spawn ITERS
    py_bench.py scale fork|spawn N ROUNDS
    py_bench.py pipe_small NMSGS | queue_small NMSGS | bulk NMSGS
    py_bench.py lock ITERS | pool NTASKS CHUNKSIZE

Everything that is not about starting processes uses the fork context,
Python's fastest (and Linux's default before 3.14), so the baseline is
Python at its best.  The clock starts and stops at the same points as in
the C programs.
"""
import multiprocessing as mp
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


def pool(ntasks, chunksize):
    # The pool is started and warmed before the clock: the benchmark is
    # map's throughput, not worker start-up.
    with mp.get_context("fork").Pool(2) as pl:
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

    def num(i, dflt):
        return int(args[i]) if len(args) > i else dflt

    if cmd == "start_join":
        v = start_join(args[0], num(1, 100))
    elif cmd == "scale":
        v = scale(args[0], num(1, 1), num(2, 1))
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
        v = pool(num(0, 100000), num(1, 1))
    else:
        raise SystemExit("py_bench: unknown benchmark %r" % cmd)
    print("%.6g" % v)


if __name__ == "__main__":
    main(sys.argv)
