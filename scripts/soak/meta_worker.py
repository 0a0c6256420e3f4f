#!/usr/bin/env python3
"""Soak worker: metadata churn against a model.

Names live in --size directories (default 32) under the worker's directory; each name is a link to
one object, a small file whose content says which object it is. Operations: create (O_EXCL, also
on a name that exists: EEXIST), link, rename (to a new name or over an existing one, across
directories too), unlink, renaming a whole directory, and checks of a random name (content, link
count, and every link of an object showing one inode number). About LIVE names exist at a time;
every created or linked name counts towards the figure of names churned. The full check compares
each directory's listing through the mount and in the backing directory with the model, and every
name's content, inode number and link count.
"""

import errno
import os

from common import Mismatch, Worker, parse_args

LIVE = 3000


def content(oid):
    # Different lengths, and the object's number inside.
    return (f"object {oid}\n" * (1 + oid % 7)).encode()


class MetaWorker(Worker):
    OPS = [("create", 30), ("link", 12), ("rename", 22), ("unlink", 30), ("check", 12),
           ("rename_dir", 1)]

    def __init__(self, args):
        super().__init__("meta", args)
        self.weights = [w for _, w in self.OPS]

    def setup(self):
        m = self.load_json("model.json", None)
        if m is None:
            ndirs = self.args.size or 32
            m = {"dirs": [f"d{i:02}" for i in range(ndirs)], "names": {}, "next": 0, "dir_renames": 0}
            os.makedirs(self.mount, exist_ok=True)
            for d in m["dirs"]:
                os.mkdir(os.path.join(self.mount, d))
        self.dirs = m["dirs"]
        self.next = m["next"]
        self.dir_renames = m["dir_renames"]
        # name -> object, names as (dir index, leaf); a list for random picks, with positions.
        self.oid = {}
        self.names = []
        self.pos = {}
        self.links = {}
        for key, oid in m["names"].items():
            d, leaf = key.split("/")
            self.add((int(d), leaf), oid)

    def save(self):
        names = {f"{d}/{leaf}": oid for (d, leaf), oid in self.oid.items()}
        self.save_json("model.json", {"dirs": self.dirs, "names": names, "next": self.next,
                                      "dir_renames": self.dir_renames})

    def add(self, name, oid):
        self.oid[name] = oid
        self.pos[name] = len(self.names)
        self.names.append(name)
        self.links[oid] = self.links.get(oid, 0) + 1

    def remove(self, name):
        oid = self.oid.pop(name)
        i = self.pos.pop(name)
        last = self.names.pop()
        if i < len(self.names):
            self.names[i] = last
            self.pos[last] = i
        self.links[oid] -= 1
        if self.links[oid] == 0:
            del self.links[oid]
        return oid

    def path(self, name, root=None):
        d, leaf = name
        return os.path.join(root or self.mount, self.dirs[d], leaf)

    def new_name(self):
        self.next += 1
        return (self.rng.randrange(len(self.dirs)), f"n{self.next}")

    def step(self):
        op = self.rng.choices(self.OPS, weights=self.weights)[0][0]
        if not self.names and op != "create":
            op = "create"
        if len(self.names) > LIVE and op in ("create", "link"):
            op = "unlink"
        try:
            getattr(self, "op_" + op)()
            self.count("ops")
            self.count("op_" + op)
        except OSError as e:
            self.failed_op(op, e)
            # What the failed operation did is unknown: take the tree as it is.
            self.resync()

    def op_create(self):
        if self.names and self.rng.random() < 0.05:
            name = self.rng.choice(self.names)
            self.note(f"create existing {self.path(name)} (O_EXCL)")
            try:
                os.close(os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            except FileExistsError:
                return
            raise Mismatch(f"O_EXCL create of existing {self.path(name)} succeeded")
        name = self.new_name()
        oid = self.next
        self.note(f"create {self.path(name)}")
        fd = os.open(self.path(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, content(oid))
        finally:
            os.close(fd)
        self.add(name, oid)
        self.count("names_created")

    def op_link(self):
        src = self.rng.choice(self.names)
        dst = self.new_name()
        self.note(f"link {self.path(src)} {self.path(dst)}")
        os.link(self.path(src), self.path(dst))
        self.add(dst, self.oid[src])
        self.count("names_created")

    def op_rename(self):
        src = self.rng.choice(self.names)
        if self.rng.random() < 0.3:
            dst = self.rng.choice(self.names)
        else:
            dst = self.new_name()
            self.count("names_created")
        self.note(f"rename {self.path(src)} {self.path(dst)}")
        os.rename(self.path(src), self.path(dst))
        if src == dst or self.oid.get(dst) == self.oid[src]:
            return  # two links of one file: rename(2) does nothing
        oid = self.remove(src)
        if dst in self.oid:
            self.remove(dst)
        self.add(dst, oid)

    def op_unlink(self):
        name = self.rng.choice(self.names)
        self.note(f"unlink {self.path(name)}")
        os.unlink(self.path(name))
        self.remove(name)

    def op_rename_dir(self):
        d = self.rng.randrange(len(self.dirs))
        self.dir_renames += 1
        new = f"d{d:02}.{self.dir_renames}"
        self.note(f"rename dir {self.dirs[d]} {new}")
        os.rename(os.path.join(self.mount, self.dirs[d]), os.path.join(self.mount, new))
        self.dirs[d] = new

    def check_name(self, name, st=None):
        oid = self.oid[name]
        p = self.path(name)
        with open(p, "rb") as f:
            got = f.read()
            st = os.fstat(f.fileno())
        if got != content(oid):
            raise Mismatch(f"{p}: content {got[:40]!r}..., want object {oid}")
        if st.st_nlink != self.links[oid]:
            raise Mismatch(f"{p}: {st.st_nlink} links, model {self.links[oid]}")
        return st.st_ino

    def op_check(self):
        name = self.rng.choice(self.names)
        self.note(f"check {self.path(name)}")
        self.check_name(name)

    def check(self, when):
        self.note(f"full check {when}")
        want = {}
        for (d, leaf) in self.oid:
            want.setdefault(d, set()).add(leaf)
        for d, dname in enumerate(self.dirs):
            for root in (self.mount, self.backing):
                got = set(os.listdir(os.path.join(root, dname)))
                if got != want.get(d, set()):
                    extra = sorted(got - want.get(d, set()))[:5]
                    missing = sorted(want.get(d, set()) - got)[:5]
                    raise Mismatch(f"{root}/{dname} {when}: listing differs from the model: "
                                   f"extra {extra}, missing {missing}")
        ino = {}
        for name in self.names:
            i = self.check_name(name)
            oid = self.oid[name]
            if ino.setdefault(oid, i) != i:
                raise Mismatch(f"{self.path(name)} {when}: inode {i}, another link of it has {ino[oid]}")
            bi = os.lstat(self.path(name, self.backing)).st_ino
            if bi != i:
                raise Mismatch(f"{self.path(name)} {when}: inode {i}, {bi} in the backing")
        self.count("full_checks")

    def resync(self):
        """Rebuilds the model from the tree (after a failed operation under fault injection):
        objects by inode number."""
        self.oid, self.names, self.pos, self.links = {}, [], {}, {}
        by_ino = {}
        for d, dname in enumerate(self.dirs):
            for leaf in os.listdir(os.path.join(self.mount, dname)):
                p = os.path.join(self.mount, dname, leaf)
                with open(p, "rb") as f:
                    text = f.read()
                    st = os.fstat(f.fileno())
                try:
                    oid = int(text.split()[1])
                except (IndexError, ValueError):
                    os.unlink(p)  # a create that failed half-way: forget it
                    continue
                by_ino.setdefault(st.st_ino, oid)
                self.add((d, leaf), by_ino[st.st_ino])


def main():
    w = MetaWorker(parse_args(__doc__))
    w.run(w.setup, w.step, w.check, w.save)


if __name__ == "__main__":
    main()
