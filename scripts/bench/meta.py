#!/usr/bin/env python3
"""A metadata job across already-mounted targets, interleaved run by run, order rotating; no cache is
dropped (the machine may be shared). Prints the median rate of each phase per target and its ratio to
the first target.

  meta.py [--files N] [--reps R] NAME=DIR [NAME=DIR ...]

Phases, on N files of 1 KiB in a fresh directory under each DIR: create (open O_CREAT|O_EXCL, write,
close), stat (each file once, right after), stat-again (at once: what the kernel still caches),
stat-2s (after a 2 s pause: past a 1 s attribute timeout), find (readdir and lstat of the directory
with find(1)), read (open, read, close each file), unlink.
"""
import argparse
import os
import statistics
import subprocess
import time

PHASES = ["create", "stat", "stat-again", "stat-2s", "find", "read", "unlink"]


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def run(root, n):
    d = os.path.join(root, f"meta-{os.getpid()}")
    os.makedirs(d)
    names = [os.path.join(d, f"f{i:06d}") for i in range(n)]
    payload = b"x" * 1024

    def create():
        for p in names:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.close(fd)

    def stat_all():
        for p in names:
            os.stat(p)

    def find():
        subprocess.run(["find", d, "-printf", "%y %s\\n"], check=True, stdout=subprocess.DEVNULL)

    def read_all():
        for p in names:
            with open(p, "rb") as f:
                f.read()

    def unlink():
        for p in names:
            os.unlink(p)

    res = {"create": timed(create), "stat": timed(stat_all), "stat-again": timed(stat_all)}
    time.sleep(2)
    res["stat-2s"] = timed(stat_all)
    res["find"] = timed(find)
    res["read"] = timed(read_all)
    res["unlink"] = timed(unlink)
    os.rmdir(d)
    return {k: n / v for k, v in res.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("targets", nargs="+", help="NAME=DIR")
    args = ap.parse_args()
    targets = [t.split("=", 1) for t in args.targets]
    rates = {name: {p: [] for p in PHASES} for name, _ in targets}
    for rep in range(args.reps):
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        for name, root in order:
            for p, r in run(root, args.files).items():
                rates[name][p].append(r)
    first = targets[0][0]
    med = {name: {p: statistics.median(v) for p, v in ph.items()} for name, ph in rates.items()}
    print(f"{args.files} files, {args.reps} reps; median operations per second (ratio to {first})")
    print("%-12s" % "phase" + "".join("%20s" % name for name, _ in targets))
    for p in PHASES:
        cells = "".join("%12.0f (%4.2fx)" % (med[n][p], med[n][p] / med[first][p]) for n, _ in targets)
        print("%-12s%s" % (p, cells))


if __name__ == "__main__":
    main()
