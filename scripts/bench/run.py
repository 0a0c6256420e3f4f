#!/usr/bin/env python3
"""Run the side-by-side benchmark matrix on already-mounted targets and save every run as JSON.

Called by scripts/bench.sh, which sets up the machine, builds and mounts the targets and unmounts
them afterwards. Usage (all targets share one backing directory; FUSE targets are mounts over it):

  run.py --backing DIR --target native=DIR --target passthrough_ll=MNT:PID --target arsyncfs=MNT:PID
         --out results.json [--reps 3] [--runtime 10] [--file-size 512M] ...

Order: for each repetition, for each job variant, every target runs once, the target order rotated
by repetition (A B C, B C A, C A B, ...). Each fio run is preceded by `sync` (dirty data of earlier
runs is not charged to the next one), and by dropping the page, dentry and inode caches (cold) or
by reading the job's files through the target (warm).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
GiB = 1 << 30

# The data jobs of issue 5. `files`: "read" jobs use the shared data files (data/f.N), "write"
# jobs a directory per target (w-TARGET/f.N). `metric`: "bw" (MiB/s) or "iops".
DATA_JOBS = [
    dict(id="seqread-1m", label="seqread 1M", rw="read", bs="1M", engine="psync", iodepth=1, numjobs=1, files="read", metric="bw"),
    dict(id="seqread-1m-j4", label="seqread 1M 4 jobs", rw="read", bs="1M", engine="psync", iodepth=1, numjobs=4, files="read", metric="bw"),
    dict(id="seqwrite-1m", label="seqwrite 1M", rw="write", bs="1M", engine="psync", iodepth=1, numjobs=1, files="write", metric="bw"),
    dict(id="randread-4k-qd1-io_uring", label="randread 4k QD1 io_uring", rw="randread", bs="4k", engine="io_uring", iodepth=1, numjobs=1, files="read", metric="iops"),
    dict(id="randread-4k-qd1-libaio", label="randread 4k QD1 libaio", rw="randread", bs="4k", engine="libaio", iodepth=1, numjobs=1, files="read", metric="iops"),
    dict(id="randread-4k-qd32-io_uring", label="randread 4k QD32 io_uring", rw="randread", bs="4k", engine="io_uring", iodepth=32, numjobs=1, files="read", metric="iops"),
    dict(id="randread-4k-qd32-libaio", label="randread 4k QD32 libaio", rw="randread", bs="4k", engine="libaio", iodepth=32, numjobs=1, files="read", metric="iops"),
    dict(id="randwrite-4k-qd32", label="randwrite 4k QD32 io_uring", rw="randwrite", bs="4k", engine="io_uring", iodepth=32, numjobs=1, files="write", metric="iops"),
    dict(id="randrw-4k-qd32-j4", label="randrw 70/30 4k QD32 4 jobs", rw="randrw", rwmixread=70, bs="4k", engine="io_uring", iodepth=32, numjobs=4, files="write", metric="iops"),
]

# Throughput against numjobs: 4 KiB O_DIRECT random reads, one synchronous reader per job, one
# file per job, page cache of the backing files warm. A global lock in the daemon shows up here.
SCALING_JOB = dict(id="scaling-randread-4k-psync", label="randread 4k psync direct", rw="randread", bs="4k", engine="psync", iodepth=1, files="read", metric="iops")
SCALING_NUMJOBS = [1, 2, 4, 8]

# Metadata phases; each is reported as a rate (higher is better).
META_PHASES = ["create", "stat-cold", "stat-warm", "unlink", "tar-x", "find-cold", "find-warm"]
META_LABELS = {
    "create": "create+write 1 KiB files",
    "stat-cold": "stat files (cold)",
    "stat-warm": "stat files (warm)",
    "unlink": "unlink files",
    "tar-x": "tar x source tree",
    "find-cold": "find over tree (cold)",
    "find-warm": "find over tree (warm)",
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Progress:
    """Which run of how many this is, and the time left.

    Each run is expected to take as long as the finished runs of its kind took on average (the
    kinds: fio after warming the files, fio after dropping the caches, the metadata job); before one
    has finished, a fio run is guessed at ramp + runtime + 2 s and the metadata job at META_GUESS_S.
    """

    META_GUESS_S = 60.0

    def __init__(self, plan, runtime, ramp_time):
        self.kinds = [self.kind(v) for v in plan]
        self.fio_guess = ramp_time + runtime + 2.0
        self.spent = {}  # kind -> [seconds of each finished run]
        self.skipped = set()  # indexes of runs that will not run (their target broke)
        self.next = 0

    @staticmethod
    def kind(v):
        return "meta" if v["kind"] == "meta" else "fio-" + v["cache"]

    def expected(self, kind):
        done = self.spent.get(kind)
        if done:
            return sum(done) / len(done)
        return self.META_GUESS_S if kind == "meta" else self.fio_guess

    def seconds_left(self):
        """Expected seconds of the runs from `next` on, skipped ones left out."""
        return sum(self.expected(k) for i, k in enumerate(self.kinds[self.next:], self.next)
                   if i not in self.skipped)

    def finished(self, seconds):
        self.spent.setdefault(self.kinds[self.next], []).append(seconds)
        self.next += 1

    def skip(self):
        self.skipped.add(self.next)
        self.next += 1

    def label(self):
        """`run 17/138, 41 min left` for the run about to start (numbered from 1)."""
        return f"run {self.next + 1}/{len(self.kinds)}, {format_duration(self.seconds_left())} left"


def format_duration(seconds):
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60):02d} min"


def plan_runs(variants, targets, reps):
    """Every run in order: (rep, variant, target); the target order rotates by repetition."""
    runs = []
    for rep in range(reps):
        for v in variants:
            order = targets[rep % len(targets):] + targets[:rep % len(targets)]
            runs.extend((rep, v, t) for t in order)
    return runs


def parse_size(s):
    m = re.fullmatch(r"(\d+)([kKmMgG]?)", s)
    if not m:
        raise SystemExit(f"run.py: bad size: {s!r} (use e.g. 512M, 1G)")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": MiB, "g": GiB}[m.group(2).lower()]


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 of stat(5)


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class Target:
    def __init__(self, spec, backing):
        name, _, rest = spec.partition("=")
        path, _, pid = rest.partition(":")
        if not name or not path:
            raise SystemExit(f"run.py: bad --target {spec!r} (NAME=DIR[:PID])")
        self.name = name
        self.root = path
        self.pid = int(pid) if pid else None
        self.backing = backing
        self.broken = None  # reason, once the target stopped working

    def alive(self):
        if self.pid is None:
            return True
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def cpu(self):
        return proc_cpu_seconds(self.pid) if self.pid else None


def prepare_files(backing, targets, file_size, n_read, n_write):
    """Create the data files once, directly in the backing directory (not timed)."""
    chunk = os.urandom(MiB)

    def make(path):
        if os.path.exists(path) and os.path.getsize(path) == file_size:
            return
        with open(path, "wb") as f:
            left = file_size
            i = 0
            while left > 0:
                n = min(left, MiB)
                # Vary each MiB a little so no two blocks are identical.
                f.write(i.to_bytes(8, "little") + chunk[8:n])
                left -= n
                i += 1

    os.makedirs(os.path.join(backing, "data"), exist_ok=True)
    for i in range(n_read):
        make(os.path.join(backing, "data", f"f.{i}"))
    for t in targets:
        d = os.path.join(backing, f"w-{t.name}")
        os.makedirs(d, exist_ok=True)
        for i in range(n_write):
            make(os.path.join(d, f"f.{i}"))
    subprocess.run(["sync"], check=True)


def job_dir(target, job):
    if job["files"] == "read":
        return os.path.join(target.root, "data")
    return os.path.join(target.root, f"w-{target.name}")


def warm_up(target, job, numjobs):
    d = job_dir(target, job)
    for i in range(numjobs):
        with open(os.path.join(d, f"f.{i}"), "rb", buffering=0) as f:
            while f.read(4 * MiB):
                pass


def fio_run(target, job, numjobs, direct, args, workdir):
    out = os.path.join(workdir, "fio.json")
    cmd = [
        "fio", "--output-format=json", f"--output={out}",
        f"--name={job['id']}", f"--directory={job_dir(target, job)}", "--filename_format=f.$jobnum",
        f"--size={args.file_size}", f"--rw={job['rw']}", f"--bs={job['bs']}",
        f"--ioengine={job['engine']}", f"--iodepth={job['iodepth']}", f"--numjobs={numjobs}",
        f"--direct={direct}", "--time_based", f"--runtime={args.runtime}",
        f"--ramp_time={args.ramp_time}", "--group_reporting", "--invalidate=0", "--norandommap",
        "--randrepeat=0", "--thread",
    ]
    if "rwmixread" in job:
        cmd.append(f"--rwmixread={job['rwmixread']}")
    timeout = args.runtime + args.ramp_time + 120
    cpu0 = target.cpu()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        rc, text = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
        rc, text = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    wall = time.monotonic() - t0
    cpu1 = target.cpu() if target.alive() else None
    rec = {"cmd": " ".join(cmd), "wall_s": round(wall, 3)}
    data = None
    try:
        with open(out) as f:
            raw = f.read()
        data = json.loads(raw[raw.index("{"):])
    except (OSError, ValueError):
        pass
    if data is None or rc != 0:
        lines = text.strip().splitlines() if text else []
        # The first line that names an error, and the count of the rest.
        errs = [ln.strip() for ln in lines if "error" in ln.lower()] or lines[-2:]
        msg = errs[0][:200] if errs else "no output"
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more error lines)"
        if data is not None and data["jobs"][0].get("error"):
            msg += f"; fio job error {data['jobs'][0]['error']}"
        rec["error"] = f"fio exit {rc}: {msg}"
        return rec
    j = data["jobs"][0]
    if j.get("error"):
        rec["error"] = f"fio job error {j['error']}"
        return rec
    rd, wr = j["read"], j["write"]
    rec.update(
        read_bw=rd["bw_bytes"], write_bw=wr["bw_bytes"], read_iops=rd["iops"], write_iops=wr["iops"],
        io_bytes=rd["io_bytes"] + wr["io_bytes"], fio_cpu_pct=j["usr_cpu"] + j["sys_cpu"],
    )
    if job["metric"] == "bw":
        rec["value"] = (rd["bw_bytes"] + wr["bw_bytes"]) / MiB
    else:
        rec["value"] = rd["iops"] + wr["iops"]
    if cpu0 is not None and cpu1 is not None:
        # The daemon's CPU over the whole fio run, ramp included; bytes moved: fio's io_bytes are
        # counted after the ramp, so scale them by wall time over measured time.
        rec["daemon_cpu_s"] = round(cpu1 - cpu0, 3)
    return rec


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def meta_run(target, rep, args, tarball, n_tree_entries):
    """The metadata job on one target; returns {phase: rate per second}."""
    base = os.path.join(target.root, f"meta-{target.name}-{rep}")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    files_dir = os.path.join(base, "files")
    os.makedirs(files_dir)
    n = args.meta_files
    names = [os.path.join(files_dir, f"file{i:06d}") for i in range(n)]
    payload = b"x" * 1024
    res = {}
    cpu0 = target.cpu()

    def create():
        for p in names:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.close(fd)

    def stat_all():
        for p in names:
            os.stat(p)

    def unlink_all():
        for p in names:
            os.unlink(p)

    tree = os.path.join(base, "tree")
    os.makedirs(tree)

    def tar_x():
        subprocess.run(["tar", "-C", tree, "-xf", tarball], check=True)

    def find_tree():
        subprocess.run(["find", tree, "-printf", "%y %s\\n"], check=True, stdout=subprocess.DEVNULL)

    subprocess.run(["sync"], check=True)
    res["create"] = n / timed(create)
    drop_caches()
    res["stat-cold"] = n / timed(stat_all)
    res["stat-warm"] = n / timed(stat_all)
    res["unlink"] = n / timed(unlink_all)
    subprocess.run(["sync"], check=True)
    res["tar-x"] = n_tree_entries / timed(tar_x)
    drop_caches()
    res["find-cold"] = n_tree_entries / timed(find_tree)
    res["find-warm"] = n_tree_entries / timed(find_tree)
    cpu1 = target.cpu() if target.alive() else None
    shutil.rmtree(base, ignore_errors=True)
    return res, (round(cpu1 - cpu0, 3) if cpu0 is not None and cpu1 is not None else None)


def make_tarball(workdir, trees):
    """A tarball of a real source tree (taken from the machine), made once on the native fs."""
    tarball = os.path.join(workdir, "tree.tar")
    present = [t for t in trees if os.path.isdir(t)]
    if not present:
        raise SystemExit("run.py: none of the source trees for the metadata job exist: " + " ".join(trees))
    cmd = ["tar", "-cf", tarball]
    for t in present:
        cmd += ["-C", os.path.dirname(t), os.path.basename(t)]
    subprocess.run(cmd, check=True)
    listing = subprocess.run(["tar", "-tf", tarball], check=True, stdout=subprocess.PIPE, text=True).stdout
    return tarball, len(listing.splitlines())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backing", required=True, help="the shared backing directory")
    ap.add_argument("--target", action="append", required=True, help="NAME=DIR[:DAEMON_PID], in order")
    ap.add_argument("--out", required=True, help="results JSON file")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=10, help="seconds per fio run (after ramp)")
    ap.add_argument("--ramp-time", type=int, default=None, help="fio ramp_time (default: 2, or 0 if runtime < 5)")
    ap.add_argument("--file-size", default="512M", help="size of each data file (one per fio job)")
    ap.add_argument("--jobs", default=".", help="regex on job ids to run (default: all)")
    ap.add_argument("--modes", default="buffered direct")
    ap.add_argument("--caches", default="warm cold")
    ap.add_argument("--scaling", type=int, default=1, help="run the numjobs scaling series (1/0)")
    ap.add_argument("--meta", type=int, default=1, help="run the metadata job (1/0)")
    ap.add_argument("--meta-files", type=int, default=20000)
    ap.add_argument("--meta-trees", default="/usr/include/linux /usr/include/x86_64-linux-gnu /usr/include/c++ /usr/share/doc/git")
    ap.add_argument("--command", default="", help="the command line to record")
    ap.add_argument("--info", action="append", default=[], help="KEY=VALUE recorded with the results")
    ap.add_argument("--plan", action="store_true",
                    help="print how many runs there would be and how long they would take, and exit")
    args = ap.parse_args()
    # SIGTERM (bench.sh's cleanup) unwinds like Ctrl-C: the running fio is killed, results saved.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.ramp_time is None:
        args.ramp_time = 2 if args.runtime >= 5 else 0
    file_size = parse_size(args.file_size)
    if os.geteuid() != 0 and not args.plan:
        raise SystemExit("run.py: must run as root (drops caches)")

    targets = [Target(s, args.backing) for s in args.target]
    job_re = re.compile(args.jobs)
    modes = args.modes.split()
    caches = args.caches.split()
    for m in modes:
        if m not in ("buffered", "direct"):
            raise SystemExit(f"run.py: bad mode {m!r} (buffered, direct)")
    for c in caches:
        if c not in ("warm", "cold"):
            raise SystemExit(f"run.py: bad cache state {c!r} (warm, cold)")

    # The variants, in run order.
    variants = []
    for job in DATA_JOBS:
        if not job_re.search(job["id"]):
            continue
        for mode in modes:
            for cache in caches:
                variants.append(dict(kind="data", key=f"{job['id']}/{mode}/{cache}", job=job, mode=mode, cache=cache, numjobs=job["numjobs"]))
    if args.scaling:
        for nj in SCALING_NUMJOBS:
            variants.append(dict(kind="scaling", key=f"{SCALING_JOB['id']}/j{nj}", job=SCALING_JOB, mode="direct", cache="warm", numjobs=nj))
    if args.meta:
        variants.append(dict(kind="meta", key="metadata"))

    plan = plan_runs(variants, targets, args.reps)
    progress = Progress([v for _, v, _ in plan], args.runtime, args.ramp_time)
    summary = (f"{len(plan)} runs ({args.reps} reps x {len(variants)} job variants x {len(targets)} targets), "
               f"about {format_duration(progress.seconds_left())} (fio runs of {args.ramp_time} + {args.runtime} s; "
               f"the estimate follows the runs as they finish)")
    if args.plan:
        print(summary)
        return
    log(summary)

    n_read = max([v["numjobs"] for v in variants if v["kind"] != "meta" and v["job"]["files"] == "read"] + [0])
    n_write = max([v["numjobs"] for v in variants if v["kind"] != "meta" and v["job"]["files"] == "write"] + [0])
    log(f"preparing {n_read} shared read files and {n_write} write files per target of {args.file_size} in {args.backing}")
    prepare_files(args.backing, targets, file_size, n_read, n_write)

    workdir = tempfile.mkdtemp(prefix="arsyncfs-bench-run.")
    tarball, n_tree = (None, 0)
    if args.meta:
        tarball, n_tree = make_tarball(workdir, args.meta_trees.split())
        log(f"metadata job: {args.meta_files} files; tarball with {n_tree} entries")

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": args.command,
        "config": dict(reps=args.reps, runtime=args.runtime, ramp_time=args.ramp_time, file_size=args.file_size,
                       modes=modes, caches=caches, jobs=args.jobs, meta_files=args.meta_files, meta_tree_entries=n_tree),
        "machine": dict(kernel=platform.release(), cpus=os.cpu_count(),
                        mem_gib=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
                        fio=subprocess.run(["fio", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()),
        "info": dict(kv.split("=", 1) for kv in args.info if "=" in kv),
        "targets": [t.name for t in targets],
        "jobs": {j["id"]: {k: v for k, v in j.items()} for j in DATA_JOBS + [SCALING_JOB]},
        "meta_labels": META_LABELS,
        "runs": [],
        "daemons": {},
    }

    def save():
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, args.out)

    t_start = time.monotonic()
    try:
        for rep, v, t in plan:
            if not t.broken and not t.alive():
                t.broken = "daemon exited"
                log(f"{t.name}: daemon exited; skipping it from now on")
            if t.broken:
                for i, (_, _, later) in enumerate(plan[progress.next:], progress.next):
                    if later is t:
                        progress.skipped.add(i)
                progress.skip()
                continue
            log(f"[{progress.label()}] rep {rep + 1}/{args.reps} {v['key']} on {t.name} ...")
            t_run = time.monotonic()
            rec = dict(target=t.name, key=v["key"], kind=v["kind"], rep=rep)
            if v["kind"] == "meta":
                try:
                    rates, cpu = meta_run(t, rep, args, tarball, n_tree)
                    rec["meta"] = rates
                    rec["daemon_cpu_s"] = cpu
                except (OSError, subprocess.CalledProcessError) as e:
                    rec["error"] = f"{type(e).__name__}: {e}"
            else:
                subprocess.run(["sync"], check=True)
                if v["cache"] == "cold":
                    drop_caches()
                else:
                    try:
                        warm_up(t, v["job"], v["numjobs"])
                    except OSError as e:
                        rec["warm_up_error"] = str(e)
                rec.update(fio_run(t, v["job"], v["numjobs"], 1 if v["mode"] == "direct" else 0, args, workdir))
            results["runs"].append(rec)
            done = progress.next + 1
            progress.finished(time.monotonic() - t_run)
            shown = rec.get("error") or (f"{rec['value']:.0f}" if "value" in rec else
                                          " ".join(f"{k}={x:.0f}/s" for k, x in rec.get("meta", {}).items()))
            log(f"[{done}/{len(plan)} done, {format_duration(progress.seconds_left())} left] "
                f"{v['key']} on {t.name}: {shown}")
            if "error" in rec and rec["error"].startswith("fio exit timeout"):
                t.broken = "fio timed out"
            save()
    finally:
        for t in targets:
            if t.pid and t.alive():
                results["daemons"][t.name] = dict(
                    pid=t.pid, vm_hwm_kib=proc_status_kib(t.pid, "VmHWM"), vm_rss_kib=proc_status_kib(t.pid, "VmRSS"),
                    cpu_s_total=proc_cpu_seconds(t.pid), threads=proc_status_kib(t.pid, "Threads"))
            if t.broken:
                results.setdefault("broken", {})[t.name] = t.broken
        results["duration_s"] = round(time.monotonic() - t_start, 1)
        save()
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"results: {args.out}")


if __name__ == "__main__":
    main()
