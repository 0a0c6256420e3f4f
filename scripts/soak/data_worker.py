#!/usr/bin/env python3
"""Soak worker: file data against a model (the soak's integrity exerciser).

Owns --size files (default 3) in its directory; each file's expected content is a bytearray, saved
between phases. Operations, picked at random: buffered pwrite and pread (each read checked against
the model), reads through a fresh descriptor, O_DIRECT aligned reads and writes (a second
descriptor), ftruncate, fallocate (allocate, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE), writes through a
shared mapping (of the buffered descriptor and of the O_DIRECT one), fdatasync, and reopening the
descriptors. At the start and end of a phase every file is compared whole, through the mount and in
the backing directory (after fdatasync). See common.py for the phase and exit statuses.
"""

import ctypes
import mmap
import os

from common import Mismatch, Worker, first_difference, parse_args

MAX_SIZE = 8 << 20
ALIGN = 4096

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE = 0x01, 0x02, 0x10
FALLOC_MODES = {
    "allocate": 0,
    "keep_size": KEEP_SIZE,
    "punch_hole": PUNCH_HOLE | KEEP_SIZE,
    "zero_range": ZERO_RANGE,
    "zero_range_keep_size": ZERO_RANGE | KEEP_SIZE,
}


def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def model_fallocate(model, mode, off, length):
    """fallocate(2)'s effect on the content (the file's size as a bytearray's length)."""
    end = off + length
    if mode in ("allocate", "zero_range") and end > len(model):
        model.extend(bytes(end - len(model)))
    if mode in ("punch_hole", "zero_range", "zero_range_keep_size") and off < len(model):
        stop = min(end, len(model))
        model[off:stop] = bytes(stop - off)


def model_write(model, off, data):
    if off > len(model):
        model.extend(bytes(off - len(model)))
    model[off:off + len(data)] = data


def pread_full(fd, off, length):
    out = bytearray()
    while len(out) < length:
        chunk = os.pread(fd, length - len(out), off + len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def pwrite_full(fd, data, off):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, off)
        view = view[n:]
        off += n


class DataFile:
    def __init__(self, name, view, backing, model):
        self.name, self.view, self.backing, self.model = name, view, backing, model
        self.fd = self.dfd = None

    def open(self):
        self.fd = os.open(self.view, os.O_RDWR | os.O_CREAT, 0o644)
        self.dfd = os.open(self.view, os.O_RDWR | os.O_DIRECT)

    def close(self):
        for fd in (self.fd, self.dfd):
            if fd is not None:
                os.close(fd)
        self.fd = self.dfd = None


class DataWorker(Worker):
    OPS = [("write", 20), ("read", 18), ("read_fresh", 3), ("truncate", 3), ("fallocate", 8),
           ("mmap_write", 5), ("mmap_write_direct", 3), ("direct_read", 14), ("direct_write", 14),
           ("fdatasync", 1), ("reopen", 1)]

    def __init__(self, args):
        super().__init__("data", args)
        self.files = []
        # An aligned buffer for O_DIRECT (anonymous mappings are page-aligned).
        self.dbuf = mmap.mmap(-1, 1 << 20)
        self.dview = memoryview(self.dbuf)
        self.weights = [w for _, w in self.OPS]

    def setup(self):
        os.makedirs(self.mount, exist_ok=True)
        for i in range(self.args.size or 3):
            name = f"f{i}"
            try:
                with open(self.state_path(name + ".model"), "rb") as f:
                    model = bytearray(f.read())
                fresh = False
            except FileNotFoundError:
                model, fresh = bytearray(), True
            df = DataFile(name, os.path.join(self.mount, name), os.path.join(self.backing, name), model)
            if fresh:
                os.close(os.open(df.view, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
            df.open()
            self.files.append(df)

    def save(self):
        for df in self.files:
            tmp = self.state_path(df.name + ".model.tmp")
            with open(tmp, "wb") as f:
                f.write(df.model)
            os.replace(tmp, self.state_path(df.name + ".model"))
            df.close()

    def same(self, df, got, want, what):
        if got != want:
            raise Mismatch(f"{df.name}: {what}: got {len(got)} bytes, want {len(want)}; first "
                           f"difference at {first_difference(got, want)}")

    def check(self, when):
        for df in self.files:
            self.note(f"{df.name}: full check {when}")
            os.fdatasync(df.fd)
            size = os.fstat(df.fd).st_size
            if size != len(df.model):
                raise Mismatch(f"{df.name} {when}: size through the mount {size}, model {len(df.model)}")
            fd = os.open(df.view, os.O_RDONLY)
            try:
                self.same(df, pread_full(fd, 0, MAX_SIZE + 1), df.model, f"whole file via the mount {when}")
            finally:
                os.close(fd)
            with open(df.backing, "rb") as f:
                self.same(df, f.read(), df.model, f"whole file in the backing {when}")
            self.count("full_checks")

    def offset(self, df):
        if self.rng.random() < 0.85:
            return min(self.rng.randrange(len(df.model) + (64 << 10)), MAX_SIZE - 1)
        return self.rng.randrange(MAX_SIZE)

    def length(self, off):
        r = self.rng.random()
        if r < 0.7:
            n = self.rng.randint(1, 4096)
        elif r < 0.95:
            n = self.rng.randint(4097, 128 << 10)
        else:
            n = self.rng.randint((128 << 10) + 1, 1 << 20)
        return max(1, min(n, MAX_SIZE - off))

    def aligned_range(self, df):
        blocks = MAX_SIZE // ALIGN
        size_blocks = -(-len(df.model) // ALIGN)
        if self.rng.random() < 0.85:
            off = min(self.rng.randrange(size_blocks + 16), blocks - 1)
        else:
            off = self.rng.randrange(blocks)
        n = self.rng.randint(1, 64) if self.rng.random() < 0.9 else self.rng.randint(65, 256)
        return off * ALIGN, min(n, blocks - off) * ALIGN

    def step(self):
        df = self.rng.choice(self.files)
        op = self.rng.choices(self.OPS, weights=self.weights)[0][0]
        try:
            getattr(self, "op_" + op)(df)
            self.count("ops")
            self.count("op_" + op)
        except OSError as e:
            self.failed_op(f"{df.name}: {op}", e)
            self.resync(df)

    def resync(self, df):
        """After a failed operation (fault injection) the file's content is what the file says:
        its model starts again from it, read through fresh descriptors."""
        self.note(f"{df.name}: resync after a failed operation")
        df.close()
        for _ in range(100):
            try:
                df.open()
                df.model = bytearray(pread_full(df.fd, 0, MAX_SIZE + 1))
                return
            except OSError as e:
                self.failed_op(f"{df.name}: resync", e)
                df.close()
        raise SystemExit(self.report(f"{df.name}: cannot read it back after 100 tries", status=2))

    def op_write(self, df):
        off = self.offset(df)
        data = self.rng.randbytes(self.length(off))
        self.note(f"{df.name}: pwrite off {off} len {len(data)}")
        pwrite_full(df.fd, data, off)
        model_write(df.model, off, data)
        self.count("bytes_written", len(data))

    def read_check(self, df, fd, what):
        off = self.offset(df)
        n = self.length(off)
        self.note(f"{df.name}: {what} off {off} len {n}")
        got = pread_full(fd, off, n)
        self.same(df, got, bytes(df.model[off:off + n]), f"{what} off {off} len {n}")
        self.count("bytes_read", len(got))

    def op_read(self, df):
        self.read_check(df, df.fd, "pread")

    def op_read_fresh(self, df):
        fd = os.open(df.view, os.O_RDONLY)
        try:
            self.read_check(df, fd, "pread (fresh open)")
        finally:
            os.close(fd)

    def op_truncate(self, df):
        size = len(df.model)
        n = self.rng.randrange(size) if size and self.rng.random() < 0.6 else self.rng.randrange(MAX_SIZE + 1)
        self.note(f"{df.name}: ftruncate {n} (from {size})")
        os.ftruncate(df.fd, n)
        if n < size:
            del df.model[n:]
        else:
            df.model.extend(bytes(n - size))

    def op_fallocate(self, df):
        mode = self.rng.choice(list(FALLOC_MODES))
        off = self.offset(df)
        n = self.length(off)
        self.note(f"{df.name}: fallocate {mode} off {off} len {n}")
        fallocate(df.fd, FALLOC_MODES[mode], off, n)
        model_fallocate(df.model, mode, off, n)

    def mmap_write(self, df, fd, what):
        size = len(df.model)
        if size == 0:
            return
        off = self.rng.randrange(size)
        data = self.rng.randbytes(self.rng.randint(1, min(size - off, 64 << 10)))
        self.note(f"{df.name}: {what} off {off} len {len(data)} (map {size})")
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[off:off + len(data)] = data
            m.flush()
        model_write(df.model, off, data)
        self.count("bytes_written", len(data))

    def op_mmap_write(self, df):
        self.mmap_write(df, df.fd, "mmap write")

    def op_mmap_write_direct(self, df):
        self.mmap_write(df, df.dfd, "mmap write (O_DIRECT descriptor)")

    def op_direct_read(self, df):
        off, n = self.aligned_range(df)
        self.note(f"{df.name}: O_DIRECT pread off {off} len {n}")
        got = os.preadv(df.dfd, [self.dview[:n]], off)
        self.same(df, bytes(self.dview[:got]), bytes(df.model[off:off + n]), f"O_DIRECT pread off {off} len {n}")
        self.count("bytes_read", got)

    def op_direct_write(self, df):
        off, n = self.aligned_range(df)
        data = self.rng.randbytes(n)
        self.note(f"{df.name}: O_DIRECT pwrite off {off} len {n}")
        self.dview[:n] = data
        done = os.pwritev(df.dfd, [self.dview[:n]], off)
        if done != n:
            # POSIX allows it; the bytes before `done` are written.
            self.note(f"{df.name}: short O_DIRECT write: {done} of {n}")
            self.count("short_writes")
        model_write(df.model, off, data[:done])
        self.count("bytes_written", done)

    def op_fdatasync(self, df):
        self.note(f"{df.name}: fdatasync")
        os.fdatasync(df.fd)

    def op_reopen(self, df):
        self.note(f"{df.name}: close and reopen")
        df.close()
        df.open()


def main():
    w = DataWorker(parse_args(__doc__))
    w.run(w.setup, w.step, w.check, w.save)


if __name__ == "__main__":
    main()
