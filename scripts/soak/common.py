"""What the soak's workers share (scripts/soak.sh runs them): the command line, the phase's
deadline, the counters each worker adds to across phases, and the state kept between phases.

A worker runs for one phase: it loads its model from the state directory (outside the mount),
checks the whole of its part of the tree against it (so whatever a remount lost is found), works
until the deadline (or SIGTERM), checks everything again, and saves the model and its counters.
`--secs 0` only checks. Exit status: 0 clean, 1 a mismatch with the model (a corruption or a loss),
2 a failed operation or a usage error.
"""

import argparse
import errno
import json
import os
import random
import signal
import sys
import time


class Mismatch(Exception):
    """The tree differs from the model: counted as a corruption."""


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--mount", required=True, help="the worker's directory through the mount")
    p.add_argument("--backing", required=True, help="the same directory in the backing tree")
    p.add_argument("--state", required=True, help="where the model and counters live (not on the mount)")
    p.add_argument("--secs", type=float, default=0, help="how long to work (0: check only)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--size", type=int, default=0, help="worker-specific size (names, files)")
    p.add_argument("--tolerate-errors", action="store_true",
                   help="count failed operations (fault injection) instead of stopping")
    return p.parse_args()


class Worker:
    """The harness: deadline, stop on SIGTERM, counters and state files."""

    def __init__(self, kind, args):
        self.kind = kind
        self.args = args
        self.mount = args.mount
        self.backing = args.backing
        os.makedirs(args.state, exist_ok=True)
        self.state_dir = args.state
        self.rng = random.Random(args.seed)
        self.stop = False
        signal.signal(signal.SIGTERM, self._on_term)
        self.counts = self._load_json("counts.json", {})
        self.recent = []

    def _on_term(self, *_):
        self.stop = True

    def state_path(self, name):
        return os.path.join(self.state_dir, name)

    def _load_json(self, name, default):
        try:
            with open(self.state_path(name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return default

    def save_json(self, name, value):
        tmp = self.state_path(name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(value, f)
        os.replace(tmp, self.state_path(name))

    def load_json(self, name, default):
        return self._load_json(name, default)

    def count(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n

    def note(self, what):
        """Remembers the last operations, for the report of a mismatch."""
        self.recent.append(what)
        del self.recent[:-16]

    def failed_op(self, what, e):
        """A failed operation: under --tolerate-errors counted by errno (the program saw it, as it
        must); otherwise fatal."""
        name = errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) else type(e).__name__
        if self.args.tolerate_errors and isinstance(e, OSError):
            self.count("error_" + name)
            return
        raise SystemExit(self.report(f"{what}: {e}", status=2))

    def report(self, msg, status):
        print(f"soak {self.kind}: {msg}", file=sys.stderr)
        if self.recent:
            print("  last operations, oldest first:\n    " + "\n    ".join(self.recent), file=sys.stderr)
        self.finish_counts()
        return status

    def finish_counts(self):
        self.save_json("counts.json", self.counts)

    def run(self, setup, step, check, save):
        """One phase: setup (load the model, open files), check, steps until the deadline,
        check, save. A Mismatch anywhere ends it with status 1."""
        try:
            setup()
            check("at the start of the phase")
            deadline = time.monotonic() + self.args.secs
            while not self.stop and time.monotonic() < deadline:
                step()
            check("at the end of the phase")
            save()
        except Mismatch as e:
            self.count("corruptions")
            sys.exit(self.report(str(e), status=1))
        except OSError as e:
            sys.exit(self.report(f"outside an operation: {e}", status=2))
        self.finish_counts()


def first_difference(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return min(len(got), len(want))
