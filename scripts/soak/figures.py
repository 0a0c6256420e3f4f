#!/usr/bin/env python3
"""The soak's figures.

  figures.py cycle DAEMON_LOG OUT_JSON   reads one daemon's -v log: the counters it logged at exit
                                         ("FUSE session ended ..."), and the warnings and errors;
                                         writes them as JSON; exits 1 if they show a loss
  figures.py summary WORK_DIR            adds up every cycle, worker and fio run; prints the
                                         figures; exits 1 on any loss or corruption

What counts as a loss at the end of a daemon's life: a pool buffer not returned (in_use != 0 or
taken != returned), a reply fuser could not deliver or a reply object dropped unanswered ("Failed to
send FUSE reply", "Reply not sent"), a completion answered by its drop guard, a panic, and — when the
daemon logs such a pair — requests sent to the reactor that were not answered.
"""

import glob
import json
import os
import re
import sys

# Lines of the daemon log that mean a reply went missing or the daemon misbehaved.
LOSS_PATTERNS = {
    "replies_dropped_unanswered": re.compile(r"Reply not sent|dropped unanswered"),
    "panics": re.compile(r"panicked"),
}
# A reply the kernel refused. With ENOENT it may be fuser's ENOSYS answer to a FUSE_INTERRUPT (whose
# lines soak.sh keeps in the log): the kernel finds no interrupted request on the descriptor the answer
# came through when the request was read through another cloned descriptor, or was answered first.
REFUSED = re.compile(r"Failed to send FUSE reply: (.*)")
INTERRUPT = re.compile(r" INTERRUPT unique ")


def parse_counters(line):
    """Flattens `a=Struct { b: 1, c: Inner { d: 2 } } e=3` into {"a.b": 1, "a.c.d": 2, "e": 3}."""
    out, path = {}, []
    for m in re.finditer(r"(\w+)\s*[:=]\s*(?:(?:\w+\s*)?(\{)|(\d+)\b)|(\})", line):
        key, opened, number, closed = m.groups()
        if closed:
            if path:
                path.pop()
        elif opened:
            path.append(key)
        elif number is not None:
            out[".".join(path + [key])] = int(number)
    return out


def find(counters, leaf):
    """Sum of the counters whose last component is `leaf` (None if there is none)."""
    vals = [v for k, v in counters.items() if k.split(".")[-1] == leaf]
    return sum(vals) if vals else None


def cycle(log_path, out_path):
    text = open(log_path, errors="replace").read()
    # A daemon that ended cleanly logs its reactors' counters once they drained (pool, requests
    # sent and answered), then its summary at unmount, whose "data" rows count reads and writes.
    lines = text.splitlines()
    drained = [l for l in lines if "reactors drained" in l]
    ended = bool(drained)
    counters = parse_counters(drained[-1].split("reactors drained", 1)[1]) if drained else {}
    data_rows, in_data = [], False
    for l in lines:
        in_data = l.startswith("data ") or (in_data and l.startswith(" "))
        if in_data:
            data_rows.append(l)
    counters.update(parse_counters(" ".join(data_rows)))
    warnings = [l for l in text.splitlines() if re.search(r"\b(WARN|ERROR)\b", l)]
    res = {"log": log_path, "counters": counters, "warnings": warnings[:20],
           "warning_count": len(warnings), "losses": []}
    for name, pat in LOSS_PATTERNS.items():
        n = sum(1 for l in text.splitlines() if pat.search(l))
        res[name] = n
        if n:
            res["losses"].append(f"{n} log lines: {name}")
    refused = [m.group(1) for m in map(REFUSED.search, text.splitlines()) if m]
    enoent = sum(1 for r in refused if r.startswith("No such file or directory"))
    interrupts = sum(1 for l in text.splitlines() if INTERRUPT.search(l))
    res["interrupts"] = interrupts
    res["interrupt_replies_refused"] = min(enoent, interrupts)
    res["reply_send_failures"] = len(refused) - res["interrupt_replies_refused"]
    if res["reply_send_failures"]:
        res["losses"].append(f"{res['reply_send_failures']} replies refused by the kernel "
                             f"({len(refused)} refusals, {interrupts} of them may be answers to interrupts)")
    if not ended:
        res["losses"].append("no exit counters in the log (the daemon did not end its session cleanly)")
    else:
        in_use, taken, returned = (find(counters, k) for k in ("in_use", "taken", "returned"))
        if in_use:
            res["losses"].append(f"{in_use} pool buffers still in use at exit")
        if taken != returned:
            res["losses"].append(f"pool: {taken} buffers taken, {returned} returned")
        sent, answered = find(counters, "sent"), find(counters, "answered")
        if sent is not None and answered is not None and sent != answered:
            res["losses"].append(f"requests: {sent} sent, {answered} answered")
        unanswered = find(counters, "unanswered")
        if unanswered:
            res["losses"].append(f"{unanswered} requests unanswered")
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)
    for l in res["losses"]:
        print(f"soak: daemon {os.path.basename(log_path)}: LOSS: {l}", file=sys.stderr)
    return 1 if res["losses"] else 0


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def summary(work):
    status = 0
    meta = load(os.path.join(work, "soak.json"), {})
    cycles = [load(p) for p in sorted(glob.glob(os.path.join(work, "logs", "daemon.*.json")))]
    cycles = [c for c in cycles if c]
    workers = {os.path.basename(os.path.dirname(p)): load(p, {})
               for p in glob.glob(os.path.join(work, "state", "*", "counts.json"))}
    fio_paths = sorted(glob.glob(os.path.join(work, "logs", "fio.*.json")))
    fio_runs = [load(p) for p in fio_paths]
    # fio.check<N>.json after each remount, fio.final.json at the end: whole-file read verifies.
    fio_full = sum(1 for p in fio_paths if re.search(r"fio\.(check\d+|final)\.json$", p))
    fio = {"ios": 0, "bytes_read": 0, "bytes_written": 0, "errors": 0, "runs": 0, "broken": 0}
    for r in fio_runs:
        if not r:
            fio["broken"] += 1
            continue
        fio["runs"] += 1
        for j in r.get("jobs", []):
            fio["errors"] += 1 if j.get("error") else 0
            for d in ("read", "write"):
                fio["ios"] += j.get(d, {}).get("total_ios", 0)
                fio["bytes_" + ("read" if d == "read" else "written")] += j.get(d, {}).get("io_bytes", 0)
    samples = []
    for p in glob.glob(os.path.join(work, "logs", "samples.*")):
        for line in open(p):
            parts = line.split()
            if len(parts) == 2:
                samples.append((int(parts[0]), int(parts[1])))

    def total(key):
        return sum(c.get(key, 0) for c in workers.values())

    def daemon_sum(leaf):
        return sum(find(c["counters"], leaf) or 0 for c in cycles)

    corruptions = total("corruptions")
    losses = [l for c in cycles for l in c["losses"]]
    errors = {k: v for w in workers.values() for k, v in w.items() if k.startswith("error_")}
    faults = {}
    for c in cycles:
        for k, v in c["counters"].items():
            if "inject" in k or "fault" in k:
                faults[k] = faults.get(k, 0) + v
    worker_ops = total("ops")
    lines = [
        f"soak: {meta.get('seconds', '?')} s planned, {meta.get('elapsed', '?')} s run, "
        f"phases of {meta.get('phase', '?')} s; binary {meta.get('bin', '?')} {meta.get('opts', '')}".rstrip(),
        f"  remounts (clean unmount, exit status 0, mount again): {max(len(cycles) - 1, 0)} "
        f"({len(cycles)} daemon lives)",
        f"  operations: {worker_ops + fio['ios']:,} "
        f"(fio {fio['ios']:,}; model workers {worker_ops:,}: "
        + ", ".join(f"{k} {workers[k].get('ops', 0):,}" for k in sorted(workers)) + ")",
        f"  bytes: written {human(fio['bytes_written'] + total('bytes_written'))}, read "
        f"{human(fio['bytes_read'] + total('bytes_read'))} (fio and the workers; full checks not counted)",
        f"  metadata: {workers.get('meta', {}).get('names_created', 0):,} names created, linked or renamed to; "
        f"{workers.get('meta', {}).get('op_unlink', 0):,} unlinked; "
        f"{workers.get('meta', {}).get('op_rename_dir', 0):,} directory renames",
        f"  xattrs: {workers.get('xattr', {}).get('ops', 0):,} operations",
        f"  whole-file and whole-tree checks against the models: {total('full_checks'):,} (at every phase's start "
        f"and end); fio runs: {fio['runs']} ({fio['runs'] - fio_full} phases verifying as they write and read, "
        f"{fio_full} reading and verifying every block after a remount)",
        f"  daemon requests: {daemon_sum('reads'):,} reads, {daemon_sum('writes'):,} writes, "
        f"{human(daemon_sum('bytes_read'))} asked for, {human(daemon_sum('bytes_written'))} written; "
        f"reactor received {daemon_sum('received'):,}",
        f"  pool balance: taken {daemon_sum('taken'):,}, returned {daemon_sum('returned'):,}, in use at exit "
        f"{daemon_sum('in_use')}; sent/answered pair: "
        + (f"{daemon_sum('sent'):,}/{daemon_sum('answered'):,}"
           if any(find(c['counters'], 'sent') is not None for c in cycles) else "not logged by this daemon"),
        f"  lost replies: {sum(c.get('reply_send_failures', 0) + c.get('replies_dropped_unanswered', 0) for c in cycles)} "
        f"(replies the kernel refused, replies dropped unanswered); FUSE_INTERRUPTs received "
        f"{sum(c.get('interrupts', 0) for c in cycles)}, fuser's answers to them refused "
        f"{sum(c.get('interrupt_replies_refused', 0) for c in cycles)}; warnings/errors logged: "
        f"{sum(c.get('warning_count', 0) for c in cycles)}",
        f"  faults injected: " + (", ".join(f"{k} {v:,}" for k, v in sorted(faults.items())) if faults
                                  else "none (not a fault-injection build, or none logged)"),
        f"  errors seen by the workers: " + (", ".join(f"{k[6:]} {v}" for k, v in sorted(errors.items()))
                                             if errors else "none"),
        f"  peak daemon RSS: {human(max((s[1] for s in samples), default=0) * 1024)}, "
        f"peak daemon fds: {max((s[0] for s in samples), default=0)}",
        f"  corruptions: {corruptions}; fio verify errors: {fio['errors']}",
    ]
    print("\n".join(lines))
    if meta.get("failures"):
        print("soak: FAILED: " + "; ".join(meta["failures"]))
        status = 1
    if corruptions or fio["errors"] or losses or fio["broken"]:
        status = 1
    for l in losses:
        print(f"soak: LOSS: {l}")
    print("soak: " + ("PASS" if status == 0 else "FAIL"))
    return status


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "cycle":
        sys.exit(cycle(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 3 and sys.argv[1] == "summary":
        sys.exit(summary(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
