#!/usr/bin/env python3
"""Turns the samples bench/run.sh collected into the table, JSON and chart.

Standard library only, so the report needs nothing installed.  Reads
samples.tsv (name, implementation, value; "null" for a feature mproc does not
have yet), takes each implementation's median, and writes:

  stdout        the readable tables
  --json FILE   a JSON array, one object per benchmark (format in README.md)
  --markdown F  the tables as Markdown
  --svg FILE    a bar chart of mproc's speed-ups (hand-written SVG)
  --chart-dir D the line charts of the GRIDS (start_memory.svg, ...) in D
  --readme F    the Markdown and machine notes, spliced into F between the
                "bench:results" markers
  --check       exit 3 if a target is missed (unmeasured ones do not count)

Adding a benchmark: a row in BENCHES (main table and bar chart), or a
family in ALL_BENCHES plus a GRIDS entry (table and line chart); a target
is one line in TARGETS.
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

IMPLS = ("mproc", "python", "raw")
SCALE_NS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The chart and the main table show the scaling benchmark at one N only.
SCALE_HEADLINE = "scale_spawn_n/16"

# name, unit, higher_is_better.  Units are ASCII so JSON consumers can
# compare them as plain strings.
BENCHES = [
    ("start_join_fork", "us/process", False),
    ("start_join_spawn", "us/process", False),
    ("start_join_forkserver", "us/process", False),
    ("pipe_small_msgs", "msgs/s", True),
    ("queue_small_msgs", "msgs/s", True),
    ("bulk_1mib", "GB/s", True),
    ("lock_uncontended", "ns", False),
    ("pool_map_chunk1", "tasks/s", True),
    ("pool_map_chunked", "tasks/s", True),
    # issue 14, item 1: bulk against a bare shared-memory ring and memcpy
    ("bulk_1mib_ring_2copies", "GB/s", True),
    ("bulk_1mib_ring_1copy", "GB/s", True),
    ("bulk_1mib_memcpy", "GB/s", True),
    ("bulk_1mib_shm", "GB/s", True),
    # issue 14, item 3: raw = a bare SPSC shared-memory ring
    ("queue_small_vs_spsc", "msgs/s", True),
]
START_METHODS = ("fork", "spawn", "forkserver")
MEM_MIB = (0, 256, 1024)  # parent memory; 0 is the start_join_* row
LIVE_NS = (1, 4, 16, 64, 256)
CONTEND_PS = (1, 2, 4)
POOL_WS = (1, 2, 4, 8)


def mem_row(method, mib):
    return "start_join_%s" % method if mib == 0 else "start_mem/%s/%d" % (method, mib)


ALL_BENCHES = (
    BENCHES
    + [("scale_spawn_n/%d" % n, "us/process", False) for n in SCALE_NS]
    + [("scale_spawn_n/fork/%d" % n, "us/process", False) for n in SCALE_NS]
    + [(mem_row(m, k), "us/process", False) for m in START_METHODS for k in MEM_MIB if k]
    + [("start_live/%s/%d" % (m, n), "us/process", False) for m in START_METHODS for n in LIVE_NS]
    + [("lock_contended/%d" % p, "ns", False) for p in CONTEND_PS]
    + [("queue_mpmc/%dx%d" % (p, p), "msgs/s", True) for p in CONTEND_PS]
    + [("pool_workers/%d" % w, "tasks/s", True) for w in POOL_WS]
)
UNIT_INFO = dict((n, (u, h)) for n, u, h in ALL_BENCHES)
MAIN_ROWS = [n for n, _, _ in BENCHES] + [SCALE_HEADLINE]

# (benchmark, baseline, least speed-up, wording).  The baseline is "raw",
# "python", or "ROW@IMPL": another row's value (mproc's own at 0 MiB, say).
# A cost target "<= 1.2x raw's time" is a least speed-up of 1 / 1.2.
TARGETS = [
    # issue 14 (its table)
    ("start_join_fork", "raw", 1 / 1.2, "<= 1.2x raw fork/_exit/waitpid's time (issue 14)"),
    ("start_join_spawn", "raw", 1 / 1.5, "<= 1.5x raw posix_spawn's time (issue 14)"),
    ("pipe_small_msgs", "raw", 2.0, ">= 2x a raw pipe (issue 14)"),
    ("pipe_small_msgs", "python", 8.0, ">= 8x Python's Pipe (issue 14)"),
    ("queue_small_msgs", "python", 80.0, ">= 80x Python's multiprocessing.Queue (issue 14)"),
    ("bulk_1mib", "raw", 4.0, ">= 4x a raw pipe (issue 14)"),
    ("pool_map_chunked", "raw", 0.6, ">= 0.6x a hand-written pool of 1000-task chunks (issue 14)"),
    ("pool_map_chunked", "python", 3.0, ">= 3x Python's Pool.map(chunksize=1000) (issue 14)"),
    # issue 14, item 1 (bulk data)
    ("bulk_1mib_ring_2copies", "raw", 0.7, ">= 0.7x a bare shm ring, two copies (put/get) (issue 14)"),
    ("bulk_1mib_ring_1copy", "raw", 0.7, ">= 0.7x a bare shm ring, one copy (reserve/borrow) (issue 14)"),
    # issue 14, item 3 (small messages)
    ("queue_small_vs_spsc", "raw", 0.5, ">= 0.5x a bare SPSC shared-memory ring (issue 14)"),
    # issue 11 (forkserver; its raw column is a raw fork)
    ("start_join_forkserver", "raw", 1 / 2.0, "<= 2x raw fork/_exit/waitpid's time (issue 11)"),
    ("start_join_forkserver", "python", 10.0, ">= 10x faster than Python's forkserver (issue 11)"),
    ("start_mem/forkserver/256", "start_join_forkserver@mproc", 1 / 1.3,
     "flat: <= 1.3x its own time with a 0 MiB parent (issue 11)"),
    ("start_mem/forkserver/1024", "start_join_forkserver@mproc", 1 / 1.3,
     "flat: <= 1.3x its own time with a 0 MiB parent (issue 11)"),
    ("start_live/fork/256", "raw", 1 / 1.25,
     "<= 1.25x raw fork's time, both with 256 children alive (issue 11)"),
    # earlier issues, not superseded
    ("start_join_fork", "python", 10.0, ">= 10x faster than Python (fork) (earlier)"),
    ("start_join_spawn", "python", 20.0, ">= 20x faster than Python (spawn) (earlier)"),
    ("queue_small_msgs", "raw", 4.0, ">= 4x a raw pipe write/read loop (issue 3)"),
    ("lock_uncontended", "python", 5.0, ">= 5x faster than Python's multiprocessing.Lock (issue 3)"),
    ("pool_map_chunk1", "python", 10.0, ">= 10x Python's Pool.map(chunksize=1) (issue 4)"),
]

START, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def load(path):
    samples = defaultdict(list)  # (name, impl) -> [float]
    seen = set()
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            name, impl, value = parts
            seen.add((name, impl))
            if value != "null":
                samples[(name, impl)].append(float(value))
    results = {}
    for name, unit, hib in ALL_BENCHES:
        if not any((name, i) in seen for i in IMPLS):
            continue
        row = {"name": name, "unit": unit}
        for impl in IMPLS:
            vals = samples.get((name, impl))
            row[impl] = statistics.median(vals) if vals else None
        row["higher_is_better"] = hib
        row["_n"] = {i: len(samples.get((name, i), [])) for i in IMPLS}
        results[name] = row
    return results


def speedup(row, base, results=None):
    """mproc's speed-up over `base` ("raw", "python", or "ROW@IMPL" looked
    up in results): above 1 means mproc is better."""
    if "@" in base:
        other, impl = base.split("@", 1)
        b = (results or {}).get(other, {}).get(impl)
    else:
        b = row[base]
    m = row["mproc"]
    if m is None or b is None or m <= 0 or b <= 0:
        return None
    return m / b if row["higher_is_better"] else b / m


def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    # Four digits stay readable as they are (1767 µs); beyond, a suffix.
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e4, " k")):
        if a >= div:
            div = div if div != 1e4 else 1e3
            return "%.3g%s" % (v / div, suffix)
    if a >= 100:
        return "%.0f" % v
    return "%.3g" % v


def fmt_x(v):
    if v is None:
        return "n/a"
    return ("%.3gx" % v) if v < 100 else ("%.0fx" % v)


def pretty_unit(u):
    return u.replace("us/", "µs/")


# ---- machine ---------------------------------------------------------------


def machine(args):
    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    sizes = []
    for b in args.bins or []:
        try:
            sizes.append("%s %d KiB" % (os.path.basename(b), os.path.getsize(b) // 1024))
        except OSError:
            pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu or platform.processor() or "unknown",
        "kernel": "%s %s" % (platform.system(), platform.release()),
        "python": platform.python_version(),
        "cc": cmd(os.environ.get("CC", "cc"), "--version").split("\n")[0],
        "date": cmd("date", "-u", "+%Y-%m-%d"),
        "commit": cmd("git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"),
        "mode": args.mode,
        "reps": args.reps,
        "elapsed": args.elapsed,
        "build": args.build,
        "sizes": ", ".join(sizes),
        "load": "%.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "?",
    }


# ---- text and markdown -------------------------------------------------------


def main_table(results):
    head = ["benchmark", "unit", "mproc", "Python", "raw", "vs Python", "vs raw"]
    rows = []
    for name in MAIN_ROWS:
        r = results.get(name)
        if not r:
            continue
        rows.append([
            name, pretty_unit(r["unit"]) + (" ↑" if r["higher_is_better"] else " ↓"),
            fmt(r["mproc"]), fmt(r["python"]), fmt(r["raw"]),
            fmt_x(speedup(r, "python")), fmt_x(speedup(r, "raw")),
        ])
    return head, rows


def scale_table(results):
    head = ["N", "mproc spawn", "raw spawn", "Python spawn", "mproc fork", "raw fork", "Python fork"]
    rows = []
    for n in SCALE_NS:
        s = results.get("scale_spawn_n/%d" % n)
        f = results.get("scale_spawn_n/fork/%d" % n)
        if not s and not f:
            continue
        cells = [str(n)]
        for r in (s, f):
            for impl in ("mproc", "raw", "python"):
                cells.append(fmt(r[impl]) if r else "n/a")
        rows.append(cells)
    return head, rows


def target_lines(results):
    out = []
    for name, base, least, words in TARGETS:
        r = results.get(name)
        s = speedup(r, base, results) if r else None
        if "@" in base:
            base = "%s in %s" % tuple(reversed(base.split("@", 1)))
        if s is None:
            out.append((None, "%s: %s — not measured" % (name, words)))
        else:
            # Below 1, say it the way the target is worded: N x the baseline's cost.
            if s >= 1:
                got = "%.2fx faster than %s" % (s, base)
            elif r["higher_is_better"]:
                got = "mproc reaches %.2fx the rate of %s" % (s, base)
            else:
                got = "mproc takes %.2fx the time of %s" % (1 / s, base)
            out.append((s >= least, "%s: %s — %s" % (name, words, got)))
    return out


def text_table(head, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    line = lambda cells: "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def markdown(results, m, svg_name, charts=()):
    mh, mr = main_table(results)
    sh, sr = scale_table(results)
    lines = [
        "Measured %s on a working tree at %s (%s mode, median of %s rounds; the whole run took %ss):"
        % (m["date"], m["commit"] or "an unknown commit", m["mode"], m["reps"], m["elapsed"]),
        "",
        "- machine: %s CPUs (`nproc`), %s; %s; load average %s when the run ended"
        % (m["nproc"], m["cpu"], m["kernel"], m["load"]),
        "- Python %s; %s; built by %s; binaries: %s" % (m["python"], m["cc"], m["build"], m["sizes"]),
        "",
        md_table(mh, mr),
        "",
        "↓ lower is better, ↑ higher is better; \"vs\" columns are mproc's speed-up "
        "(above 1x: mproc is faster).  n/a: not in mproc yet, or no such baseline.",
        "",
        "Targets:",
        "",
    ]
    for ok, text in target_lines(results):
        lines.append("- %s %s" % ({True: "**met**", False: "**missed**", None: "**?**"}[ok], text))
    lines += ["", "`scale_spawn_n`: start N processes at once, then join them all; µs per process:", "",
              md_table(sh, sr), ""]
    if svg_name:
        lines += ["![mproc speed-ups](%s)" % svg_name, ""]
    shown = set()
    for g in GRIDS:
        gh, gr = grid_table(results, g)
        if not gr:
            continue
        lines += [g["intro"], "", md_table(gh, gr), ""]
        last = g is [x for x in GRIDS if x["chart"] == g["chart"]][-1]
        if last and g["chart"] + ".svg" in charts and g["chart"] not in shown:
            shown.add(g["chart"])
            lines += ["![%s](%s.svg)" % (g["chart"].replace("_", " "), g["chart"]), ""]
    return "\n".join(lines)


# ---- grids: one family of rows along one dimension, as a table and a line chart


def _start_series(row_fn):
    """The start methods' series: mproc, raw and Python per method (a
    forkserver has no raw form: its bar is raw fork, in the fork series)."""
    out = []
    for m in START_METHODS:
        out.append(("mproc " + m, row_fn(m), "mproc"))
        if m != "forkserver":
            out.append(("raw " + {"fork": "fork", "spawn": "posix_spawn"}[m], row_fn(m), "raw"))
        out.append(("Python " + m, row_fn(m), "python"))
    return out


def _impl_series(row_fn):
    return [("mproc", row_fn, "mproc"), ("raw", row_fn, "raw"), ("Python", row_fn, "python")]


# col (the table's first column), chart (the SVG file it is drawn in;
# grids sharing one are panels side by side), title, x label, xs, unit,
# series as (label, x -> row name, implementation), the intro of its table.
GRIDS = [
    dict(col="MiB", chart="start_memory", title="start+join vs the parent's memory",
         xlabel="memory the parent has touched (MiB)", xs=MEM_MIB, unit="µs/process",
         series=_start_series(lambda m: (lambda x: mem_row(m, x))),
         intro="`start_mem`: start+join of one process while the parent holds N MiB of touched "
               "private memory (4 KiB pages); µs per process (0 MiB: the start_join rows):"),
    dict(col="alive", chart="start_live", title="start+join vs children alive",
         xlabel="children alive (started, blocked)", xs=LIVE_NS, unit="µs/process",
         series=_start_series(lambda m: (lambda x: "start_live/%s/%d" % (m, x))),
         intro="`start_live`: start+join of one more process while N children of the same "
               "method are alive; µs per process:"),
    dict(col="P", chart="contention", title="lock acquire+release",
         xlabel="processes contending", xs=CONTEND_PS, unit="ns per pair, whole system",
         series=_impl_series(lambda x: "lock_contended/%d" % x),
         intro="`lock_contended`: P processes taking one lock in turn (raw: a process-shared "
               "`pthread_mutex_t`); ns per acquire+release of the whole system:"),
    dict(col="P", chart="contention", title="queue, P producers x P consumers",
         xlabel="P", xs=CONTEND_PS, unit="msgs/s",
         series=_impl_series(lambda x: "queue_mpmc/%dx%d" % (x, x)),
         intro="`queue_mpmc`: 64-byte messages through one queue (raw: one pipe) with P "
               "producers and P consumers; messages/s:"),
    dict(col="W", chart="contention", title="pool map, chunksize 1000",
         xlabel="workers", xs=POOL_WS, unit="tasks/s",
         series=_impl_series(lambda x: "pool_workers/%d" % x),
         intro="`pool_workers`: `pool_map_chunked` (1,000,000 tasks, chunksize 1000) with W "
               "workers; tasks/s:"),
]


def grid_values(results, g):
    """[(label, impl, [value or None per x])] of the series measured at all."""
    out = []
    for label, row_fn, impl in g["series"]:
        vals = [(results.get(row_fn(x)) or {}).get(impl) for x in g["xs"]]
        if any(v is not None for v in vals):
            out.append((label, impl, vals))
    return out


def grid_table(results, g):
    series = grid_values(results, g)
    head = [g["col"]] + [label for label, _, _ in series]
    rows = [[str(x)] + [fmt(vals[i]) for _, _, vals in series] for i, x in enumerate(g["xs"])
            if any(vals[i] is not None for _, _, vals in series)]
    return head, rows


# ---- line charts (hand-written SVG) ------------------------------------------------

IMPL_COLORS = {"mproc": "#4878d0", "raw": "#ee854a", "python": "#6acc64"}
METHOD_DASH = {"fork": "", "spawn": "7,3", "forkserver": "2,3"}


def _dash(label):
    for m, d in METHOD_DASH.items():
        if label.endswith(" " + m) or (m == "spawn" and label.endswith("posix_spawn")):
            return d
    return ""


def line_panel(o, x0, y0, w, h, g, series):
    """One chart into the list `o`: categorical x, log y, a line per series."""
    vals = [v for _, _, vs in series for v in vs if v]
    if not vals:
        return
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    hi = hi * 10 if hi == lo else hi
    n = len(g["xs"])

    def px(i):
        return x0 + (w * (i + 0.5) / n)

    def py(v):
        return y0 + h - h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    o.append('<text x="%d" y="%d" font-size="13" font-weight="bold">%s</text>' % (x0, y0 - 10, esc(g["title"])))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>' % (x0, y0, w, h))
    d = lo
    while d <= hi * 1.0001:
        for k in (1, 2, 5):
            v = d * k
            if v > hi * 1.0001:
                break
            o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>'
                     % (x0, py(v), x0 + w, py(v), "#ccc" if k == 1 else "#eee"))
            if k == 1 or (hi / lo <= 100):
                o.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555" font-size="11">%s</text>'
                         % (x0 - 4, py(v) + 4, esc(fmt(v))))
        d *= 10
    for i, x in enumerate(g["xs"]):
        o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555" font-size="11">%s</text>'
                 % (px(i), y0 + h + 15, x))
    o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#333" font-size="11">%s</text>'
             % (x0 + w / 2, y0 + h + 32, esc(g["xlabel"])))
    o.append('<text x="%d" y="%d" fill="#333" font-size="11" transform="rotate(-90 %d %d)" '
             'text-anchor="middle">%s (log)</text>' % (x0 - 48, y0 + h / 2, x0 - 48, y0 + h / 2,
                                                       esc(g["unit"])))
    for label, impl, vs in series:
        pts = [(px(i), py(v)) for i, v in enumerate(vs) if v]
        dash = _dash(label)
        if len(pts) > 1:
            o.append('<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"><title>%s</title></polyline>'
                     % (IMPL_COLORS[impl], ' stroke-dasharray="%s"' % dash if dash else "",
                        " ".join("%.1f,%.1f" % p for p in pts), esc(label)))
        for (x, y), v in zip(pts, [v for v in vs if v]):
            o.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s</title></circle>'
                     % (x, y, IMPL_COLORS[impl], esc(label), esc(fmt(v))))


def line_chart(results, grids, m):
    """The SVG of one chart file: its grids side by side, one legend."""
    panels = [(g, grid_values(results, g)) for g in grids]
    panels = [(g, s) for g, s in panels if s]
    if not panels:
        return None
    pw, ph, left, top = (560 if len(panels) == 1 else 260), 300, 70, 60
    legend = []
    for _, series in panels:
        for label, impl, _ in series:
            if (label, impl) not in legend:
                legend.append((label, impl))
    legend_w = 170 if len(panels) == 1 else 0
    width = left + len(panels) * (pw + left) + legend_w
    height = top + ph + 50 + (0 if legend_w else 20 * ((len(legend) + 3) // 4) + 10) + 20
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="Helvetica, Arial, sans-serif" font-size="12">' % (width, height, width, height),
         '<rect width="100%" height="100%" fill="white"/>']
    for i, (g, series) in enumerate(panels):
        line_panel(o, left + i * (pw + left), top, pw, ph, g, series)
    for j, (label, impl) in enumerate(legend):
        if legend_w:
            lx, ly = left + pw + 20, top + 10 + 20 * j
        else:
            lx, ly = left + 200 * (j % 4), top + ph + 58 + 20 * (j // 4)
        dash = _dash(label)
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>'
                 % (lx, ly - 4, lx + 28, ly - 4, IMPL_COLORS[impl],
                    ' stroke-dasharray="%s"' % dash if dash else ""))
        o.append('<text x="%d" y="%d">%s</text>' % (lx + 34, ly, esc(label)))
    o.append('<text x="%d" y="%d" fill="#555" font-size="11">%s</text>' % (
        left, height - 8, esc("%s, %s CPUs, %s, Python %s, %s mode, median of %s; lower is better "
                              "for µs and ns, higher for /s" % (
                                  m["date"], m["nproc"], m["kernel"], m["python"], m["mode"], m["reps"]))))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def chart_files(results, m):
    """{file name: SVG text} of the line charts, in GRIDS order."""
    names = []
    for g in GRIDS:
        if g["chart"] not in names:
            names.append(g["chart"])
    out = {}
    for name in names:
        svg = line_chart(results, [g for g in GRIDS if g["chart"] == name], m)
        if svg:
            out[name + ".svg"] = svg
    return out


# ---- SVG -----------------------------------------------------------------------


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(results, m):
    rows = [results[n] for n in MAIN_ROWS if n in results]
    series = [("python", "vs Python multiprocessing", "#4878d0"), ("raw", "vs raw system calls", "#ee854a")]
    vals = [speedup(r, b) for r in rows for b, _, _ in series]
    vals = [v for v in vals if v]
    lo = 10 ** math.floor(math.log10(min(vals + [0.5])))
    hi = 10 ** math.ceil(math.log10(max(vals + [2.0])))
    left, right, top, row_h, bar_h = 180, 60, 70, 38, 13
    width = 900
    plot_w = width - left - right
    height = top + row_h * len(rows) + 60

    def x(v):
        return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="Helvetica, Arial, sans-serif" font-size="12">' % (width, height, width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15" font-weight="bold">mproc speed-up over each baseline '
         '(log scale; right of 1x = mproc faster)</text>' % left]
    lx = left
    for _, label, color in series:
        o.append('<rect x="%d" y="34" width="12" height="12" fill="%s"/>' % (lx, color))
        o.append('<text x="%d" y="44">%s</text>' % (lx + 16, esc(label)))
        lx += 200
    o.append('<line x1="%d" y1="36" x2="%d" y2="46" stroke="#c00" stroke-width="2" stroke-dasharray="3,2"/>' % (lx + 5, lx + 5))
    o.append('<text x="%d" y="44">target (report.py TARGETS)</text>' % (lx + 14))
    bottom = top + row_h * len(rows)
    d = lo
    while d <= hi * 1.0001:
        for k in ((1, 2, 5) if d < hi else (1,)):
            v = d * k
            if v > hi * 1.0001:
                break
            xv = x(v)
            major = k == 1
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>'
                     % (xv, top - 6, xv, bottom, "#333" if abs(v - 1) < 1e-9 else ("#ccc" if major else "#eee"),
                        "1.5" if abs(v - 1) < 1e-9 else "1"))
            if major:
                o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%gx</text>' % (xv, bottom + 16, v))
        d *= 10
    one = x(1.0)
    for i, r in enumerate(rows):
        y0 = top + i * row_h
        o.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y0 + row_h / 2 + 4, esc(r["name"])))
        if r["mproc"] is None:
            # Nothing to compare yet: show what mproc will be measured against.
            base = ", ".join("%s %s" % (lbl, fmt(r[b])) for b, lbl in (("python", "Python"), ("raw", "raw"))
                             if r[b] is not None)
            o.append('<text x="%.1f" y="%d" fill="#888" font-size="11">not in mproc yet (%s %s)</text>'
                     % (one + 6, y0 + row_h / 2 + 4, esc(base), esc(pretty_unit(r["unit"]))))
            continue
        for j, (base, _, color) in enumerate(series):
            y = y0 + 5 + j * (bar_h + 2)
            s = speedup(r, base)
            xt = None
            for tname, tbase, least, _ in TARGETS:
                if tname == r["name"] and tbase == base:
                    xt = x(least)
                    o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c00" stroke-width="2" '
                             'stroke-dasharray="3,2"><title>target %s</title></line>'
                             % (xt, y - 2, xt, y + bar_h + 2, fmt_x(least)))
            if s is None:
                o.append('<text x="%.1f" y="%d" fill="#999" font-size="11">n/a (no baseline)</text>'
                         % (one + 4, y + 10))
                continue
            xs = x(s)
            x0, w = (one, xs - one) if s >= 1 else (xs, one - xs)
            o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>' % (x0, y, max(w, 1), bar_h, color))
            # The value label goes past the target mark, not over it.
            ends = [xs] + ([xt] if xt is not None else [])
            tx, anchor = (max(ends) + 4, "start") if s >= 1 else (min(ends) - 4, "end")
            o.append('<text x="%.1f" y="%d" text-anchor="%s" font-size="11">%s</text>' % (tx, y + 10, anchor, fmt_x(s)))
    o.append('<text x="%d" y="%d" fill="#555" font-size="11">%s</text>' % (
        left, height - 12, esc("%s, %s CPUs, %s, Python %s, %s mode, median of %s" % (
            m["date"], m["nproc"], m["kernel"], m["python"], m["mode"], m["reps"]))))
    o.append("</svg>")
    return "\n".join(o) + "\n"


# ---- main ------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", required=True)
    ap.add_argument("--mode", default="?")
    ap.add_argument("--reps", default="?")
    ap.add_argument("--elapsed", default="?")
    ap.add_argument("--build", default="?")
    ap.add_argument("--bins", nargs="*")
    ap.add_argument("--json", action="append", default=[])
    ap.add_argument("--svg", action="append", default=[])
    ap.add_argument("--chart-dir", action="append", default=[])
    ap.add_argument("--markdown")
    ap.add_argument("--readme")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    results = load(args.samples)
    if not results:
        sys.exit("report.py: no samples in %s" % args.samples)
    m = machine(args)

    head, rows = main_table(results)
    print()
    print(text_table(head, rows))
    print("\n(vs = mproc's speed-up over that baseline; above 1x mproc is faster)")
    sh, sr = scale_table(results)
    if sr:
        print("\nscale_spawn_n: µs per process, N started at once then joined\n")
        print(text_table(sh, sr))
    for g in GRIDS:
        gh, gr = grid_table(results, g)
        if gr:
            print("\n%s (%s)\n" % (g["title"], g["unit"]))
            print(text_table(gh, gr))
    print("\nTargets:")
    targets = target_lines(results)
    for ok, text in targets:
        print("  [%s] %s" % ({True: "met", False: "MISSED", None: "?"}[ok], text))

    ordered = [results[n] for n, _, _ in ALL_BENCHES if n in results]
    clean = [{k: r[k] for k in ("name", "unit", "mproc", "python", "raw", "higher_is_better")} for r in ordered]
    for path in args.json:
        with open(path, "w") as f:
            json.dump(clean, f, indent=1, ensure_ascii=True)
            f.write("\n")
    svg = svg_chart(results, m)
    for path in args.svg:
        with open(path, "w") as f:
            f.write(svg)
    charts = chart_files(results, m)
    for d in args.chart_dir:
        for name, text in charts.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results, m, "speedups.svg", charts))
    if args.readme:
        with open(args.readme) as f:
            text = f.read()
        if START not in text or END not in text:
            sys.exit("report.py: %s has no %s ... %s markers" % (args.readme, START, END))
        a, rest = text.split(START, 1)
        _, b = rest.split(END, 1)
        block = "%s\n<!-- written by bench/run.sh --readme; edits here are overwritten -->\n%s%s" % (
            START, markdown(results, m, "speedups.svg", charts), END)
        with open(args.readme, "w") as f:
            f.write(a + block + b)
    if args.check:
        missed = [text for ok, text in targets if ok is False]
        print("\n--check: %d target(s) met, %d missed, %d not measured"
              % (sum(ok is True for ok, _ in targets), len(missed), sum(ok is None for ok, _ in targets)))
        if missed:
            sys.exit(3)


if __name__ == "__main__":
    main()
