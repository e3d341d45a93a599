#!/usr/bin/env python3
"""Turns the samples bench/run.sh collected into the table, JSON and chart.

Standard library only, so the report needs nothing installed.  Reads
samples.tsv (name, implementation, value; "null" for a feature mproc does not
have yet), takes each implementation's median, and writes:

  stdout        the readable tables
  --json FILE   a JSON array, one object per benchmark (format in README.md)
  --markdown F  the tables as Markdown
  --svg FILE    a bar chart of mproc's speed-ups (hand-written SVG)
  --readme F    the Markdown and machine notes, spliced into F between the
                "bench:results" markers
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
SCALE_HEADLINE = "scale_spawn_n/64"

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
    # issue 14, item 3: raw = a bare SPSC shared-memory ring
    ("queue_small_vs_spsc", "msgs/s", True),
]
ALL_BENCHES = (
    BENCHES
    + [("scale_spawn_n/%d" % n, "us/process", False) for n in SCALE_NS]
    + [("scale_spawn_n/fork/%d" % n, "us/process", False) for n in SCALE_NS]
)
UNIT_INFO = dict((n, (u, h)) for n, u, h in ALL_BENCHES)
MAIN_ROWS = [n for n, _, _ in BENCHES] + [SCALE_HEADLINE]

# (benchmark, baseline, least speed-up, wording) from the issue.
TARGETS = [
    ("start_join_fork", "raw", 1 / 1.25, "within 1.25x of raw fork/_exit/waitpid"),
    ("start_join_fork", "python", 10.0, ">= 10x faster than Python (fork)"),
    ("start_join_spawn", "raw", 1 / 1.5, "within 1.5x of raw posix_spawn"),
    ("start_join_spawn", "python", 20.0, ">= 20x faster than Python (spawn)"),
    # issue 11 (forkserver; the raw column is a raw fork)
    ("start_join_forkserver", "raw", 1 / 2.0, "within 2x of raw fork/_exit/waitpid"),
    ("start_join_forkserver", "python", 10.0, ">= 10x faster than Python (forkserver)"),
    # issue 3 (IPC)
    ("queue_small_msgs", "python", 50.0, ">= 50x Python's multiprocessing.Queue"),
    ("queue_small_msgs", "raw", 4.0, ">= 4x a raw pipe write/read loop"),
    ("bulk_1mib", "raw", 4.0, ">= 4x a raw pipe"),
    ("pipe_small_msgs", "raw", 0.7, ">= 0.7x a raw pipe"),
    ("lock_uncontended", "python", 5.0, ">= 5x faster than Python's multiprocessing.Lock"),
    # issue 4 (pool)
    ("pool_map_chunk1", "python", 10.0, ">= 10x Python's Pool.map(chunksize=1)"),
    ("pool_map_chunked", "python", 2.0, ">= 2x Python's Pool.map(chunksize=1000)"),
    # issue 14, item 2 (pool map with big chunks)
    ("pool_map_chunked", "python", 3.0, ">= 3x Python's Pool.map(chunksize=1000)"),
    ("pool_map_chunked", "raw", 0.6, ">= 0.6x a hand-written pool of 1000-task chunks"),
    # issue 14, item 3 (small messages)
    ("pipe_small_msgs", "raw", 2.0, ">= 2x a raw pipe"),
    ("pipe_small_msgs", "python", 8.0, ">= 8x Python's Connection"),
    ("queue_small_msgs", "python", 80.0, ">= 80x Python's multiprocessing.Queue"),
    ("queue_small_vs_spsc", "raw", 0.5, ">= 0.5x a bare SPSC shared-memory ring"),
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


def speedup(row, base):
    """mproc's speed-up over `base`: above 1 means mproc is better."""
    m, b = row["mproc"], row[base]
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
        s = speedup(r, base) if r else None
        if s is None:
            out.append((None, "%s: %s — not measured" % (name, words)))
        else:
            # Below 1, say it the way the target is worded: N x the baseline's cost.
            if s >= 1:
                got = "%.2fx faster than %s" % (s, base)
            elif r["higher_is_better"]:
                got = "mproc reaches %.2fx %s's rate" % (s, base)
            else:
                got = "mproc takes %.2fx %s's time" % (1 / s, base)
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


def markdown(results, m, svg_name):
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
    return "\n".join(lines)


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
    o.append('<text x="%d" y="44">target (issues 3-5)</text>' % (lx + 14))
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
    ap.add_argument("--markdown")
    ap.add_argument("--readme")
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
    print("\nTargets:")
    for ok, text in target_lines(results):
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
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(results, m, "speedups.svg"))
    if args.readme:
        with open(args.readme) as f:
            text = f.read()
        if START not in text or END not in text:
            sys.exit("report.py: %s has no %s ... %s markers" % (args.readme, START, END))
        a, rest = text.split(START, 1)
        _, b = rest.split(END, 1)
        block = "%s\n<!-- written by bench/run.sh --readme; edits here are overwritten -->\n%s%s" % (
            START, markdown(results, m, "speedups.svg"), END)
        with open(args.readme, "w") as f:
            f.write(a + block + b)


if __name__ == "__main__":
    main()
