#!/usr/bin/env python3
"""Turn a results JSON of scripts/bench/run.py into docs/benchmarks.md and two SVG charts.

  report.py RESULTS.json [--md docs/benchmarks.md] [--svg docs/benchmarks.svg] [--scaling docs/scaling.svg]

Medians over repetitions; ratios of medians. The charts are plain SVG written by hand (no plotting
library needed): benchmarks.svg has one group of horizontal bars per job (throughput relative to
the native directory, one colour per target), scaling.svg has throughput against numjobs.
"""

import argparse
import json
import os
import statistics
import sys
from html import escape

GiB = 1 << 30
COLORS = {"native": "#8c8c8c", "passthrough_ll": "#e6862e", "arsyncfs": "#2f6fd0"}
EXTRA_COLORS = ["#3a9e5a", "#9b59b6", "#c0392b"]
SECTIONS = [("warm", "buffered"), ("warm", "direct"), ("cold", "buffered"), ("cold", "direct")]
SECTION_TITLES = {
    ("warm", "buffered"): "Page cache warm, buffered I/O",
    ("warm", "direct"): "Page cache warm, O_DIRECT",
    ("cold", "buffered"): "Caches dropped, buffered I/O",
    ("cold", "direct"): "Caches dropped, O_DIRECT",
}


def color(target, targets):
    if target in COLORS:
        return COLORS[target]
    return EXTRA_COLORS[[t for t in targets if t not in COLORS].index(target) % len(EXTRA_COLORS)]


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_value(v, metric):
    if v is None:
        return "—"
    if metric == "bw":
        return f"{v:,.0f} MiB/s" if v >= 100 else f"{v:,.1f} MiB/s"
    if metric == "iops":
        return f"{v / 1000:,.1f}k IOPS" if v >= 10000 else f"{v:,.0f} IOPS"
    return f"{v:,.0f}/s"


def fmt_num(v, metric):
    if v is None:
        return "—"
    if metric == "bw":
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    return f"{v:,.0f}"


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}×"


def ratio(a, b):
    return a / b if a is not None and b else None


class Results:
    def __init__(self, data):
        self.d = data
        self.targets = data["targets"]
        self.baseline = "native" if "native" in self.targets else self.targets[0]
        others = [t for t in self.targets if t != self.baseline]
        self.subject = "arsyncfs" if "arsyncfs" in others else (others[-1] if others else None)
        self.reference = "passthrough_ll" if "passthrough_ll" in others and self.subject != "passthrough_ll" else None
        self.runs = data["runs"]
        self.cfg = data["config"]
        self.jobs = data["jobs"]
        # values[key][target] = list of run values; errors[key][target] = list of messages
        self.values, self.errors, self.cpu = {}, {}, {}
        self.meta = {}
        cfg_ramp = self.cfg.get("ramp_time", 0)
        runtime = self.cfg.get("runtime", 1)
        for r in self.runs:
            k, t = r["key"], r["target"]
            if "error" in r:
                self.errors.setdefault(k, {}).setdefault(t, []).append(r["error"])
                continue
            if r["kind"] == "meta":
                for phase, v in r["meta"].items():
                    self.meta.setdefault(phase, {}).setdefault(t, []).append(v)
                continue
            self.values.setdefault(k, {}).setdefault(t, []).append(r["value"])
            if r.get("daemon_cpu_s") is not None and r.get("io_bytes"):
                # fio counts bytes after the ramp; the daemon's CPU covers the whole run.
                moved = r["io_bytes"] * (runtime + cfg_ramp) / runtime
                self.cpu.setdefault(k, {}).setdefault(t, []).append((r["daemon_cpu_s"], moved))

    def med(self, key, target):
        return median(self.values.get(key, {}).get(target, []))

    def meta_med(self, phase, target):
        return median(self.meta.get(phase, {}).get(target, []))

    def cpu_per_gib(self, key, target):
        xs = self.cpu.get(key, {}).get(target, [])
        per = [c / (b / GiB) for c, b in xs if b > 0]
        return median(per)

    def cpu_per_gib_total(self, target):
        c = sum(x for k in self.cpu for x, _ in self.cpu[k].get(target, []))
        b = sum(y for k in self.cpu for _, y in self.cpu[k].get(target, []))
        return (c / (b / GiB)) if b else None, b / GiB

    def failed(self, key, target):
        return bool(self.errors.get(key, {}).get(target)) and not self.values.get(key, {}).get(target)

    def data_rows(self):
        """(section, job, key) for the data variants present, in job order."""
        rows = []
        for cache, mode in SECTIONS:
            for jid, job in self.jobs.items():
                if jid.startswith("scaling"):
                    continue
                key = f"{jid}/{mode}/{cache}"
                if key in self.values or key in self.errors:
                    rows.append(((cache, mode), job, key))
        return rows

    def scaling_points(self):
        pts = {}
        for key in set(self.values) | set(self.errors):
            if key.startswith("scaling"):
                nj = int(key.rsplit("/j", 1)[1])
                pts[nj] = key
        return dict(sorted(pts.items()))


# ------------------------------------------------------------------------------------------------
# SVG
# ------------------------------------------------------------------------------------------------

FONT = "font-family='DejaVu Sans, Verdana, Arial, sans-serif'"


def svg_text(x, y, s, size=12, anchor="start", weight="normal", fill="#222", extra=""):
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}' {extra}>{escape(str(s))}</text>")


def bars_svg(res, path):
    """Horizontal grouped bars: per job, each target's median relative to the baseline."""
    targets = res.targets
    n = len(targets)
    bar_h, bar_gap, group_gap = 9, 2, 12
    group_h = n * (bar_h + bar_gap) - bar_gap
    label_w, plot_w, right_w = 300, 470, 150
    left = 20
    x0 = left + label_w
    width = x0 + plot_w + right_w

    # Rows: section headers and groups.
    items = []
    for section in SECTIONS:
        rows = [r for r in res.data_rows() if r[0] == section]
        if not rows:
            continue
        items.append(("header", SECTION_TITLES[section]))
        for _, job, key in rows:
            vals = {t: res.med(key, t) for t in targets}
            items.append(("group", job["label"], vals, job["metric"], {t: res.failed(key, t) for t in targets}))
    if res.meta:
        items.append(("header", f"Metadata ({res.cfg.get('meta_files', 0):,} files; tree of "
                                 f"{res.cfg.get('meta_tree_entries', 0):,} entries)"))
        labels = res.d.get("meta_labels", {})
        for phase in labels:
            if phase in res.meta:
                vals = {t: res.meta_med(phase, t) for t in targets}
                items.append(("group", labels[phase], vals, "rate", {t: vals[t] is None for t in targets}))

    ratios = []
    for it in items:
        if it[0] == "group":
            base = it[2].get(res.baseline)
            for t in targets:
                r = ratio(it[2][t], base)
                if r is not None:
                    ratios.append(r)
    cap = 3.0
    xmax = min(cap, max([1.25] + [r * 1.08 for r in ratios]))
    xmax = (int(xmax * 4) + 1) / 4  # round up to a quarter

    def sx(r):
        return x0 + plot_w * min(r, xmax) / xmax

    header_h = 30
    top = 110
    y = top
    layout = []
    for it in items:
        if it[0] == "header":
            y += 8
            layout.append((y, it))
            y += header_h - 8
        else:
            layout.append((y, it))
            y += group_h + group_gap
    plot_bottom = y
    height = plot_bottom + 50

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' {FONT}>",
           f"<rect width='{width}' height='{height}' fill='white'/>"]
    reps = res.cfg.get("reps")
    title = f"Throughput relative to the {res.baseline} directory (higher is better)"
    out.append(svg_text(left, 28, title, 18, weight="bold"))
    sub = (f"median of {reps} interleaved runs, {res.cfg.get('runtime')} s each · {res.d['date']} · "
           f"{res.d['machine']['cpus']} CPUs, Linux {res.d['machine']['kernel']}")
    out.append(svg_text(left, 48, sub, 12, fill="#555"))
    # Legend
    lx = left
    for t in targets:
        out.append(f"<rect x='{lx}' y='62' width='14' height='14' fill='{color(t, targets)}'/>")
        out.append(svg_text(lx + 20, 74, t, 13))
        lx += 40 + 8 * len(t)
    out.append(svg_text(x0 + plot_w + 10, 100, f"{res.baseline} (absolute)", 11, fill="#555"))
    # Grid and axis
    step = 0.25 if xmax <= 1.5 else 0.5
    g = 0.0
    while g <= xmax + 1e-9:
        gx = sx(g)
        dash = "" if abs(g - 1.0) > 1e-9 else ""
        stroke = "#444" if abs(g - 1.0) < 1e-9 else "#e3e3e3"
        width_ = 1.5 if abs(g - 1.0) < 1e-9 else 1
        out.append(f"<line x1='{gx:.1f}' y1='{top - 6}' x2='{gx:.1f}' y2='{plot_bottom}' stroke='{stroke}' stroke-width='{width_}' {dash}/>")
        out.append(svg_text(gx, top - 10, f"{g:g}×", 11, anchor="middle", fill="#555"))
        out.append(svg_text(gx, plot_bottom + 16, f"{g:g}×", 11, anchor="middle", fill="#555"))
        g += step
    out.append(svg_text(x0 + plot_w / 2, plot_bottom + 36, f"throughput / {res.baseline} throughput (median)", 12, anchor="middle", fill="#333"))

    shade = False
    for yy, it in layout:
        if it[0] == "header":
            out.append(f"<rect x='{left - 10}' y='{yy - 4}' width='{width - left}' height='{header_h - 6}' fill='#f2f4f7'/>")
            out.append(svg_text(left, yy + 13, it[1], 14, weight="bold"))
            shade = False
            continue
        _, label, vals, metric, failed = it
        if shade:
            out.append(f"<rect x='{left - 10}' y='{yy - group_gap / 2}' width='{width - left}' height='{group_h + group_gap}' fill='#fafafa'/>")
        shade = not shade
        out.append(svg_text(x0 - 10, yy + group_h / 2 + 4, label, 12, anchor="end"))
        base = vals.get(res.baseline)
        for i, t in enumerate(targets):
            by = yy + i * (bar_h + bar_gap)
            r = ratio(vals[t], base)
            if r is None:
                msg = "failed" if failed.get(t) else "no data"
                out.append(svg_text(x0 + 4, by + bar_h - 1, f"{t}: {msg}", 10, fill="#c0392b" if failed.get(t) else "#888"))
                continue
            out.append(f"<rect x='{x0}' y='{by}' width='{max(sx(r) - x0, 1):.1f}' height='{bar_h}' fill='{color(t, targets)}'>"
                       f"<title>{escape(t)}: {escape(fmt_value(vals[t], metric))} ({r:.2f}× {escape(res.baseline)})</title></rect>")
            if t != res.baseline:
                txt = f"{r:.2f}×" + (" ▶" if r > xmax else "")
                if sx(r) + 6 * len(txt) + 6 > x0 + plot_w:
                    # No room right of the bar: write the value inside its end.
                    out.append(svg_text(sx(r) - 4, by + bar_h - 1, txt, 10, anchor="end", fill="white", weight="bold"))
                else:
                    out.append(svg_text(sx(r) + 4, by + bar_h - 1, txt, 10, fill="#333"))
        out.append(svg_text(x0 + plot_w + 10, yy + group_h / 2 + 4, fmt_value(base, metric), 11, fill="#555"))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def scaling_svg(res, path):
    pts = res.scaling_points()
    targets = res.targets
    job = res.jobs.get("scaling-randread-4k-psync", {"label": "randread 4k", "metric": "iops"})
    width, height = 760, 460
    left, right, top, bottom = 90, 170, 70, 60
    pw, ph = width - left - right, height - top - bottom
    xs = list(pts)
    series = {t: [res.med(pts[n], t) for n in xs] for t in targets}
    vmax = max([v for s in series.values() for v in s if v is not None] + [1])
    # A round axis maximum.
    mag = 10 ** (len(str(int(vmax))) - 1)
    ymax = next(m * mag for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * mag >= vmax * 1.05)

    def sx(i):
        return left + (pw * i / (len(xs) - 1) if len(xs) > 1 else pw / 2)

    def sy(v):
        return top + ph * (1 - v / ymax)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' {FONT}>",
           f"<rect width='{width}' height='{height}' fill='white'/>"]
    out.append(svg_text(20, 28, f"Scaling: {job['label']} (4 KiB, one file per job, warm)", 17, weight="bold"))
    out.append(svg_text(20, 48, f"median IOPS of {res.cfg.get('reps')} runs against fio numjobs · "
                                f"{res.d['machine']['cpus']} CPUs · {res.d['date']}", 12, fill="#555"))
    for k in range(6):
        v = ymax * k / 5
        y = sy(v)
        out.append(f"<line x1='{left}' y1='{y:.1f}' x2='{left + pw}' y2='{y:.1f}' stroke='#e3e3e3'/>")
        out.append(svg_text(left - 8, y + 4, f"{v / 1000:g}k" if ymax >= 10000 else f"{v:g}", 11, anchor="end", fill="#555"))
    for i, n in enumerate(xs):
        out.append(svg_text(sx(i), top + ph + 18, str(n), 12, anchor="middle"))
    out.append(svg_text(left + pw / 2, top + ph + 40, "numjobs (concurrent readers)", 12, anchor="middle", fill="#333"))
    out.append(svg_text(22, top + ph / 2, "IOPS", 12, anchor="middle", fill="#333", extra=f"transform='rotate(-90 22 {top + ph / 2})'"))
    out.append(f"<line x1='{left}' y1='{top + ph}' x2='{left + pw}' y2='{top + ph}' stroke='#444'/>")
    end_labels = []
    for t in targets:
        c = color(t, targets)
        s = series[t]
        pts_xy = [(sx(i), sy(v)) for i, v in enumerate(s) if v is not None]
        if len(pts_xy) > 1:
            out.append(f"<polyline points='{' '.join(f'{x:.1f},{y:.1f}' for x, y in pts_xy)}' fill='none' stroke='{c}' stroke-width='2.5'/>")
        for (x, y), v, n in zip([(sx(i), sy(v)) if v is not None else None for i, v in enumerate(s)], s, xs):
            if v is None:
                continue
            out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4' fill='{c}'><title>{escape(t)}, numjobs {n}: {v:,.0f} IOPS</title></circle>")
        last = next((v for v in reversed(s) if v is not None), None)
        if last is not None:
            end_labels.append([sy(last), t, last, c])
    # End-of-line labels, pushed apart so they do not overlap.
    end_labels.sort()
    for i in range(1, len(end_labels)):
        if end_labels[i][0] - end_labels[i - 1][0] < 16:
            end_labels[i][0] = end_labels[i - 1][0] + 16
    for y, t, v, c in end_labels:
        out.append(svg_text(left + pw + 12, y + 4, f"{t} {v / 1000:,.1f}k" if v >= 10000 else f"{t} {v:,.0f}", 12, fill=c, weight="bold"))
    if not xs:
        out.append(svg_text(width / 2, height / 2, "no scaling runs in these results", 14, anchor="middle", fill="#888"))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# ------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------

def md_report(res, md_path, svg_path, scaling_path):
    d = res.d
    cfg = res.cfg
    S, R, B = res.subject, res.reference, res.baseline
    rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(md_path)))  # noqa: E731
    L = []
    L.append("# Benchmarks: arsyncfs vs libfuse's passthrough_ll vs the native directory")
    L.append("")
    L.append("Produced by `scripts/bench.sh` (raw runs: `target/bench/results-*.json`). Run it as root on an otherwise idle")
    L.append("machine; it installs what it needs, builds both filesystems, mounts them over one temp backing directory,")
    L.append("runs the same fio jobs on all three targets interleaved run by run, and rewrites this file and the two charts.")
    L.append("")
    L.append("```sh")
    L.append("sudo bash scripts/bench.sh                     # full run: REPS=3, RUNTIME=10 (about 90 minutes)")
    L.append("REPS=1 RUNTIME=2 FILE_SIZE=64M META_FILES=2000 JOBS='seqread-1m$|randread-4k-qd32-io_uring' \\")
    L.append("  sudo -E bash scripts/bench.sh                # smoke run, a couple of minutes")
    L.append("bash scripts/bench.sh --help                   # every knob (TARGETS, JOBS, MODES, CACHES, ...)")
    L.append("```")
    L.append("")
    L.append("## This run")
    L.append("")
    if cfg["reps"] < 3 or cfg["runtime"] < 10:
        L.append(f"**A smoke run ({cfg['reps']} repetition(s) of {cfg['runtime']} s): the numbers show that the tooling works and"
                 " are not measurements to quote. The full run is `sudo bash scripts/bench.sh`.**")
        L.append("")
    L.append(f"- Date: {d['date']}; duration {d.get('duration_s', 0) / 60:.0f} min")
    L.append(f"- Command: `{d.get('command') or 'bash scripts/bench.sh'}`")
    m = d["machine"]
    L.append(f"- Machine: {m['cpus']} CPUs, {m['mem_gib']} GiB, Linux {m['kernel']}, {m['fio']}; backing directory on the root filesystem")
    L.append(f"- Runs: {cfg['reps']} repetitions of each job on each target, interleaved (the target order rotates per"
             f" repetition); fio `time_based`, {cfg['runtime']} s + {cfg['ramp_time']} s ramp; one {cfg['file_size']} file per fio job")
    info = d.get("info", {})
    L.append(f"- passthrough_ll: built from Debian's libfuse3-dev example with `gcc -O2`, mounted `passthrough_ll -f -o source=BACKING`"
             f" ({info.get('passthrough_ll_opts', 'defaults')})")
    if "arsyncfs" in res.targets:
        L.append(f"- arsyncfs: release build, commit {info.get('arsyncfs_commit', '?')}, options: {info.get('arsyncfs_opts', '(defaults)')}")
    L.append("- Cold runs: `sync; echo 3 > /proc/sys/vm/drop_caches` before the run. Warm runs: the job's files read once through"
             " the target first. Every run starts after a `sync`, so no run pays for the dirty pages of the one before.")
    if d.get("broken"):
        for t, why in d["broken"].items():
            L.append(f"- **{t} stopped working during the run ({why}); its later runs are missing.**")
    L.append("")
    L.append(f"![Throughput relative to {B}, per job]({rel(svg_path)})")
    L.append("")

    # Data jobs table
    L.append(f"## Data jobs (median; MiB/s for 1 MiB jobs, IOPS for 4 KiB jobs)")
    L.append("")
    head = ["job", "I/O", "cache"] + res.targets
    if S:
        head.append(f"{S}/{B}")
    if S and R:
        head.append(f"{S}/{R}")
    cpu_targets = [t for t in res.targets if t != B]
    head += [f"CPU s/GiB {t}" for t in cpu_targets]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|")
    for (cache, mode), job, key in res.data_rows():
        row = [job["label"], "O_DIRECT" if mode == "direct" else "buffered", cache]
        for t in res.targets:
            row.append("**failed**" if res.failed(key, t) else fmt_num(res.med(key, t), job["metric"]))
        if S:
            row.append(fmt_ratio(ratio(res.med(key, S), res.med(key, B))))
        if S and R:
            row.append(fmt_ratio(ratio(res.med(key, S), res.med(key, R))))
        for t in cpu_targets:
            c = res.cpu_per_gib(key, t)
            row.append("—" if c is None else f"{c:.2f}")
        L.append("| " + " | ".join(row) + " |")
    L.append("")

    # Metadata
    if res.meta:
        L.append(f"## Metadata job (median rate; {cfg.get('meta_files', 0):,} files of 1 KiB, "
                 f"a source tree of {cfg.get('meta_tree_entries', 0):,} entries)")
        L.append("")
        head = ["phase", "unit"] + res.targets + ([f"{S}/{B}"] if S else []) + ([f"{S}/{R}"] if S and R else [])
        L.append("| " + " | ".join(head) + " |")
        L.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
        for phase, label in d.get("meta_labels", {}).items():
            if phase not in res.meta:
                continue
            unit = "entries/s" if phase.startswith(("tar", "find")) else "files/s"
            row = [label, unit] + [fmt_num(res.meta_med(phase, t), "rate") for t in res.targets]
            if S:
                row.append(fmt_ratio(ratio(res.meta_med(phase, S), res.meta_med(phase, B))))
            if S and R:
                row.append(fmt_ratio(ratio(res.meta_med(phase, S), res.meta_med(phase, R))))
            L.append("| " + " | ".join(row) + " |")
        L.append("")
        L.append("Phases in order: create (open O_CREAT|O_EXCL, write 1 KiB, close), stat after dropping caches, stat again,")
        L.append("unlink; `tar x` of the tarball into the target; `find -printf '%y %s'` after dropping caches, and again.")
        L.append("")

    # Scaling
    pts = res.scaling_points()
    if pts:
        L.append("## Scaling with numjobs (4 KiB O_DIRECT random reads, psync, one file per job, warm; median IOPS)")
        L.append("")
        L.append(f"![Throughput against numjobs]({rel(scaling_path)})")
        L.append("")
        L.append("| numjobs | " + " | ".join(res.targets) + " |")
        L.append("|---:|" + "|".join(["---:"] * len(res.targets)) + "|")
        for n, key in pts.items():
            L.append(f"| {n} | " + " | ".join("**failed**" if res.failed(key, t) else fmt_num(res.med(key, t), "iops") for t in res.targets) + " |")
        L.append("")

    # Resources
    daemons = d.get("daemons", {})
    if daemons:
        L.append("## Resources of the daemons")
        L.append("")
        L.append("| target | peak RSS (VmHWM) | RSS at end | threads | CPU s, whole suite | data moved by fio | CPU s per GiB moved |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for t, info_d in daemons.items():
            per, gib = res.cpu_per_gib_total(t)
            L.append(f"| {t} | {info_d['vm_hwm_kib'] / 1024:,.1f} MiB | {info_d['vm_rss_kib'] / 1024:,.1f} MiB | {info_d.get('threads', '?')} | "
                     f"{info_d['cpu_s_total']:,.1f} | {gib:,.1f} GiB | {'—' if per is None else f'{per:.2f}'} |")
        L.append("")
        L.append("Peak RSS is the daemon's VmHWM read at the end of the suite. CPU per GiB: the daemon's utime+stime")
        L.append("(/proc/PID/stat) during each fio run, over the bytes fio moved in it (scaled to include the ramp);")
        L.append("in the job table the median per run, here the sum over all fio runs.")
        L.append("")

    # The bar
    checks = bar_checks(res)
    if checks:
        L.append("## Against the bar of issue 5")
        L.append("")
        n_pass = sum(1 for c in checks if c[3] is True)
        n_miss = sum(1 for c in checks if c[3] is False)
        L.append(f"{n_pass} of {n_pass + n_miss} checks pass on this run's medians"
                 f"{'' if n_pass + n_miss == len(checks) else f' ({len(checks) - n_pass - n_miss} without data)'}.")
        L.append("")
        L.append("| check | value | target | |")
        L.append("|---|---:|---:|---|")
        for name, val, target, ok in checks:
            L.append(f"| {name} | {fmt_ratio(val) if isinstance(val, float) or val is None else val} | {target} | "
                     f"{'—' if ok is None else ('pass' if ok else '**miss**')} |")
        L.append("")

    # Errors
    errs = [(k, t, e[0]) for k, by_t in sorted(res.errors.items()) for t, e in by_t.items()]
    if errs:
        L.append("## Failed runs")
        L.append("")
        for k, t, e in errs:
            n = len(res.errors[k][t])
            L.append(f"- `{k}` on {t} ({n} of {cfg['reps']} runs): {e[:240]}")
        L.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(L))


def bar_checks(res):
    """The criteria of issue 5, evaluated on this run's medians."""
    S, R, B = res.subject, res.reference, res.baseline
    if S != "arsyncfs":
        return []
    out = []
    if R:
        for (cache, mode), job, key in res.data_rows():
            daemon_served = mode == "direct" or job["rw"] in ("write", "randwrite", "randrw") or cache == "cold"
            need = 1.25 if daemon_served else 1.0
            name = f"{job['label']}, {'O_DIRECT' if mode == 'direct' else 'buffered'}, {cache}: {S}/{R}"
            if res.failed(key, R) and res.med(key, S) is not None:
                out.append((name, f"{R} fails", f"≥ {need:.2f}×", True))
                continue
            r = ratio(res.med(key, S), res.med(key, R))
            out.append((name, r, f"≥ {need:.2f}×", None if r is None else r >= need))
        for phase, label in res.d.get("meta_labels", {}).items():
            if phase in res.meta:
                r = ratio(res.meta_med(phase, S), res.meta_med(phase, R))
                out.append((f"metadata {label}: {S}/{R}", r, "≥ 1.00×", None if r is None else r >= 1.0))
    if B == "native":
        for key, label, need in [
            ("randread-4k-qd32-io_uring/direct/warm", "4 KiB O_DIRECT randread QD32 io_uring", 0.85),
            ("randread-4k-qd32-libaio/direct/warm", "4 KiB O_DIRECT randread QD32 libaio", 0.85),
            ("seqread-1m/direct/warm", "1 MiB O_DIRECT seqread", 0.75),
            ("seqwrite-1m/buffered/warm", "1 MiB buffered seqwrite", 0.60),
        ]:
            if key in res.values or key in res.errors:
                r = ratio(res.med(key, S), res.med(key, B))
                out.append((f"{label}: {S}/{B}", r, f"≥ {need:.2f}×", None if r is None else r >= need))
    # Growth from 1 to 4 jobs on read jobs.
    pairs = []
    for cache, mode in SECTIONS:
        pairs.append((f"seqread-1m/{mode}/{cache}", f"seqread-1m-j4/{mode}/{cache}", f"seqread 1M {mode} {cache}: 4 jobs / 1 job"))
    pairs.append(("scaling-randread-4k-psync/j1", "scaling-randread-4k-psync/j4", "randread 4k psync direct: 4 jobs / 1 job"))
    for k1, k4, label in pairs:
        if (k1 in res.values or k1 in res.errors) and (k4 in res.values or k4 in res.errors):
            r = ratio(res.med(k4, S), res.med(k1, S))
            out.append((f"{label} ({S})", r, "> 1.00×", None if r is None else r > 1.0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--md", default="docs/benchmarks.md")
    ap.add_argument("--svg", default="docs/benchmarks.svg")
    ap.add_argument("--scaling", default="docs/scaling.svg")
    args = ap.parse_args()
    try:
        with open(args.results) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"report.py: cannot read {args.results}: {e}")
    res = Results(data)
    for p in (args.md, args.svg, args.scaling):
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    bars_svg(res, args.svg)
    scaling_svg(res, args.scaling)
    md_report(res, args.md, args.svg, args.scaling)
    print(f"report.py: wrote {args.md}, {args.svg}, {args.scaling}")


if __name__ == "__main__":
    main()
