#!/usr/bin/env python3
"""Soak worker: extended attributes against a model.

Objects: --size files (default 16) and 4 directories in the worker's directory. Operations: set
(plain, XATTR_CREATE on an existing name: EEXIST, XATTR_REPLACE on a missing one: ENODATA), get
(value, or ENODATA), remove, list; user.* and trusted.* names, values of 0 to 3000 bytes. The full
check compares every object's user.* and trusted.* attributes, names and values, through the mount
and in the backing directory with the model. An object's values stay within BUDGET bytes in all:
ext4 keeps an inode's attributes in one block, and a set past it fails with ENOSPC.
"""

import errno
import os

from common import Mismatch, Worker, parse_args

NAMES = [f"user.soak{i}" for i in range(8)] + [f"trusted.soak{i}" for i in range(4)]
BUDGET = 2048


def ours(names):
    return {n for n in names if n.startswith(("user.", "trusted."))}


class XattrWorker(Worker):
    OPS = [("set", 30), ("set_create", 8), ("set_replace", 8), ("get", 30), ("remove", 14),
           ("list", 10)]

    def __init__(self, args):
        super().__init__("xattr", args)
        self.weights = [w for _, w in self.OPS]

    def setup(self):
        m = self.load_json("model.json", None)
        if m is None:
            objs = [f"file{i}" for i in range(self.args.size or 16)] + [f"dir{i}" for i in range(4)]
            os.makedirs(self.mount, exist_ok=True)
            for o in objs:
                p = os.path.join(self.mount, o)
                if o.startswith("dir"):
                    os.mkdir(p)
                else:
                    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            m = {o: {} for o in objs}
        # Values are kept as hex in the state file.
        self.model = {o: {k: bytes.fromhex(v) for k, v in attrs.items()} for o, attrs in m.items()}
        self.objs = sorted(self.model)

    def save(self):
        self.save_json("model.json", {o: {k: v.hex() for k, v in a.items()} for o, a in self.model.items()})

    def pick(self):
        o = self.rng.choice(self.objs)
        return o, os.path.join(self.mount, o), self.rng.choice(NAMES)

    def value(self, o, name):
        """A value for `name` of `o` that keeps the object's values within BUDGET."""
        room = BUDGET - sum(len(v) for n, v in self.model[o].items() if n != name)
        n = self.rng.choice([0, 1, 16, 100, self.rng.randint(1, 2048)])
        return self.rng.randbytes(max(0, min(n, room)))

    def step(self):
        op = self.rng.choices(self.OPS, weights=self.weights)[0][0]
        o, p, name = self.pick()
        try:
            getattr(self, "op_" + op)(o, p, name)
            self.count("ops")
            self.count("op_" + op)
        except OSError as e:
            self.failed_op(op, e)
            self.resync(o)

    def expect_errno(self, what, want, f):
        try:
            f()
        except OSError as e:
            if e.errno == want:
                return
            raise
        raise Mismatch(f"{what}: succeeded, want {errno.errorcode[want]}")

    def op_set(self, o, p, name):
        v = self.value(o, name)
        self.note(f"setxattr {p} {name} ({len(v)} bytes)")
        os.setxattr(p, name, v)
        self.model[o][name] = v
        self.count("bytes_written", len(v))

    def op_set_create(self, o, p, name):
        v = self.value(o, name)
        self.note(f"setxattr CREATE {p} {name}")
        if name in self.model[o]:
            self.expect_errno(f"XATTR_CREATE of existing {name} on {p}", errno.EEXIST,
                              lambda: os.setxattr(p, name, v, os.XATTR_CREATE))
            return
        os.setxattr(p, name, v, os.XATTR_CREATE)
        self.model[o][name] = v

    def op_set_replace(self, o, p, name):
        v = self.value(o, name)
        self.note(f"setxattr REPLACE {p} {name}")
        if name not in self.model[o]:
            self.expect_errno(f"XATTR_REPLACE of missing {name} on {p}", errno.ENODATA,
                              lambda: os.setxattr(p, name, v, os.XATTR_REPLACE))
            return
        os.setxattr(p, name, v, os.XATTR_REPLACE)
        self.model[o][name] = v

    def op_get(self, o, p, name):
        self.note(f"getxattr {p} {name}")
        if name not in self.model[o]:
            self.expect_errno(f"getxattr of missing {name} on {p}", errno.ENODATA,
                              lambda: os.getxattr(p, name))
            return
        got = os.getxattr(p, name)
        if got != self.model[o][name]:
            raise Mismatch(f"getxattr {p} {name}: {len(got)} bytes, model {len(self.model[o][name])}")
        self.count("bytes_read", len(got))

    def op_remove(self, o, p, name):
        self.note(f"removexattr {p} {name}")
        if name not in self.model[o]:
            self.expect_errno(f"removexattr of missing {name} on {p}", errno.ENODATA,
                              lambda: os.removexattr(p, name))
            return
        os.removexattr(p, name)
        del self.model[o][name]

    def op_list(self, o, p, _name):
        self.note(f"listxattr {p}")
        got = ours(os.listxattr(p))
        if got != set(self.model[o]):
            raise Mismatch(f"listxattr {p}: {sorted(got)}, model {sorted(self.model[o])}")

    def check(self, when):
        self.note(f"full check {when}")
        for o in self.objs:
            for root in (self.mount, self.backing):
                p = os.path.join(root, o)
                got = {n: os.getxattr(p, n) for n in ours(os.listxattr(p))}
                if got != self.model[o]:
                    raise Mismatch(f"{p} {when}: attributes {sorted(got)} differ from the model "
                                   f"{sorted(self.model[o])} (names or values)")
        self.count("full_checks")

    def resync(self, o):
        p = os.path.join(self.mount, o)
        self.model[o] = {n: os.getxattr(p, n) for n in ours(os.listxattr(p))}


def main():
    w = XattrWorker(parse_args(__doc__))
    w.run(w.setup, w.step, w.check, w.save)


if __name__ == "__main__":
    main()
