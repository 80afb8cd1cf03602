"""The replay engine: from a directory snapshot and a recording of effects, every state a
crash can leave.

:class:`Tracker` walks the effects of a :class:`Recording` forward; at any prefix it builds

* the image a **process crash** leaves (:meth:`Tracker.crash_image`): the page cache outlives
  the process, so every effect of the prefix is there, namespace effects included;
* an image a **power loss** may leave (:meth:`Tracker.power_image`): each file as of its last
  completed flush, then, for each 4096-byte page written since, any one of the versions that
  page had since (page by page, any subset, any order); of the namespace effects after the
  last completed directory fsync, a prefix.

:class:`LiveReplay` applies effects one by one to a real directory instead, so that readers
attached to it watch every intermediate state through their shared mappings.
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass

PAGE = 4096

# Effect kinds. DATA: bytes at an offset (stores are 8-byte DATA effects). SIZE: the file's new
# length. FLUSH: fdatasync/fsync completed. CREATE/RENAME/UNLINK: the namespace.
DATA, SIZE, FLUSH = "data", "size", "flush"
CREATE, RENAME, UNLINK, FSYNC_DIR, UNLOCK = "create", "rename", "unlink", "fsync_dir", "unlock"
LINK = "link"  # a second name for an existing file: dst names the file src names
NAMESPACE = (CREATE, RENAME, UNLINK, LINK)


@dataclass(frozen=True)
class Effect:
    """One recorded effect. ``fid`` names a file (an inode), ``name`` a directory entry."""

    kind: str
    fid: int = -1
    offset: int = 0
    data: bytes = b""
    size: int = 0
    name: str = ""  # CREATE, UNLINK: the entry; RENAME: the source
    dst: str = ""  # RENAME: the destination
    note: str = ""  # what mmkv called, for messages ("store CLAIMED", "pwrite", ...)

    def describe(self) -> str:
        """``kind, file, offset, length`` in one line."""
        if self.kind == DATA:
            return f"data f{self.fid} @{self.offset} len {len(self.data)} ({self.note})"
        if self.kind == SIZE:
            return f"size f{self.fid} -> {self.size} ({self.note})"
        if self.kind == FLUSH:
            return f"flush f{self.fid} ({self.note})"
        if self.kind == CREATE:
            return f"create {self.name} = f{self.fid} ({self.note})"
        if self.kind == RENAME:
            note = f", {self.note}" if self.note else ""
            return f"rename {self.name} -> {self.dst} (f{self.fid}{note})"
        if self.kind == UNLINK:
            return f"unlink {self.name}"
        if self.kind == LINK:
            return f"link {self.name} -> {self.dst} (f{self.fid})"
        return self.kind


@dataclass(frozen=True)
class Snapshot:
    """A directory: file contents by file id, and the names that lead to them."""

    files: dict[int, bytes]
    names: dict[str, int]


@dataclass
class Image:
    """A directory as a crash left it; ``flushed_at[fid]``: effects before the file's last
    completed flush (0 for the snapshot's files), for the power-loss oracle."""

    names: dict[str, int]
    files: dict[int, bytes]
    flushed_at: dict[int, int]
    note: str = ""


def apply(files: dict[int, bytearray], names: dict[str, int], e: Effect) -> None:
    """Apply one effect to in-memory files and namespace (the page cache's view)."""
    if e.kind == DATA:
        buf = files[e.fid]
        end = e.offset + len(e.data)
        if end > len(buf):
            buf.extend(bytes(end - len(buf)))
        buf[e.offset : end] = e.data
    elif e.kind == SIZE:
        buf = files[e.fid]
        if e.size < len(buf):
            del buf[e.size :]
        else:
            buf.extend(bytes(e.size - len(buf)))
    elif e.kind == CREATE:
        files[e.fid] = bytearray()
    if e.kind in NAMESPACE:
        apply_name(names, e)


def apply_name(names: dict[str, int], e: Effect) -> None:
    if e.kind == CREATE:
        names[e.name] = e.fid
    elif e.kind == RENAME:
        names[e.dst] = names.pop(e.name)
    elif e.kind == UNLINK:
        del names[e.name]
    elif e.kind == LINK:
        names[e.dst] = names[e.name]


class Tracker:
    """Walks a recording forward, keeping what a power loss could still lose."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.files = {fid: bytearray(data) for fid, data in snapshot.files.items()}
        self.names = dict(snapshot.names)
        self.k = 0  # effects applied
        self.flushed: dict[int, bytes] = dict(snapshot.files)  # the snapshot is on disk
        self.flushed_at = dict.fromkeys(snapshot.files, 0)
        # Since each file's last flush: page -> [(k, its bytes after effect k, file size)].
        self.versions: dict[int, dict[int, list[tuple[int, bytes, int]]]] = {}
        self.sizes: dict[int, list[tuple[int, int]]] = {}  # [(k, size after effect k)]
        self.durable_names = dict(snapshot.names)
        self.pending: list[tuple[int, Effect]] = []  # namespace effects after the last fsync_dir

    def advance(self, effects: list[Effect], k: int) -> None:
        """Apply effects until the first ``k`` are applied."""
        while self.k < k:
            self.step(effects[self.k])

    def step(self, e: Effect) -> None:
        k = self.k
        size_before = len(self.files[e.fid]) if e.fid in self.files else -1
        apply(self.files, self.names, e)
        if e.kind == DATA and e.data:
            buf = self.files[e.fid]
            pages = self.versions.setdefault(e.fid, {})
            for p in range(e.offset // PAGE, (e.offset + len(e.data) - 1) // PAGE + 1):
                pages.setdefault(p, []).append(
                    (k, bytes(buf[p * PAGE : p * PAGE + PAGE]), len(buf))
                )
        elif e.kind == CREATE:
            self.flushed[e.fid] = b""
            self.flushed_at[e.fid] = 0
        elif e.kind == FLUSH:
            self.flushed[e.fid] = bytes(self.files[e.fid])
            self.flushed_at[e.fid] = k
            self.versions.pop(e.fid, None)
            self.sizes.pop(e.fid, None)
        elif e.kind == FSYNC_DIR:
            self.durable_names = dict(self.names)
            self.pending = []
        if e.kind in NAMESPACE:
            self.pending.append((k, e))
        if e.fid in self.files and len(self.files[e.fid]) != size_before:
            self.sizes.setdefault(e.fid, []).append((k, len(self.files[e.fid])))
        self.k = k + 1

    def crash_image(self, torn: tuple[Effect, int] | None = None) -> Image:
        """What a process crash leaves now: everything applied; with ``torn = (e, n)``, also the
        first ``n`` bytes of the DATA effect ``e`` (the process died while copying it)."""
        files = {fid: bytes(self.files[fid]) for fid in set(self.names.values())}
        note = "process crash"
        if torn is not None:
            e, n = torn
            if e.fid in files:
                buf = bytearray(files[e.fid])
                apply({e.fid: buf}, {}, dataclasses.replace(e, data=e.data[:n]))
                files[e.fid] = bytes(buf)
            note = f"process crash inside the next effect: {n} of its {len(e.data)} bytes"
        return Image(dict(self.names), files, dict(self.flushed_at), note)

    def power_image(self, rng: random.Random, how: str) -> Image:
        """One state a power loss may leave now. ``how``: ``nothing`` (only what was flushed),
        ``everything``, ``cut`` (pages and namespace as of one earlier moment), ``mix`` (each
        page flushed or newest), ``random`` (each page any of its versions)."""
        cut = rng.randint(0, self.k) if how == "cut" else self.k
        if how == "nothing":
            n_names = 0
        elif how in ("everything", "cut"):
            n_names = sum(1 for k, _ in self.pending if k < cut)
        else:
            n_names = rng.randint(0, len(self.pending))
        names = dict(self.durable_names)
        for _, e in self.pending[:n_names]:
            apply_name(names, e)
        files = {}
        changed = total = 0
        for fid in set(names.values()):
            buf = bytearray(self.flushed[fid])
            size = len(buf)
            history = self.sizes.get(fid, [])
            if how == "everything":
                size = len(self.files[fid])
            elif how == "cut":
                size = next((s for k, s in reversed(history) if k < cut), size)
            elif how != "nothing" and history and rng.random() < 0.5:
                size = rng.choice(history)[1]
            chosen = []
            for p, versions in self.versions.get(fid, {}).items():
                total += 1
                pick = self._pick(rng, how, versions, cut)
                if pick is not None:
                    changed += 1
                    chosen.append((p, pick[1]))
                    size = max(size, pick[2])  # a page of the file is there: so is its length
            if size > len(buf):
                buf.extend(bytes(size - len(buf)))
            for p, data in chosen:
                buf[p * PAGE : p * PAGE + PAGE] = data + bytes(PAGE - len(data))
            files[fid] = bytes(buf[:size])
        note = (
            f"power loss [{how}]: {n_names}/{len(self.pending)} namespace effects, "
            f"{changed}/{total} unflushed pages at a newer version"
        )
        return Image(names, files, dict(self.flushed_at), note)

    @staticmethod
    def _pick(
        rng: random.Random, how: str, versions: list[tuple[int, bytes, int]], cut: int
    ) -> tuple[int, bytes, int] | None:
        """Which version of one unflushed page survives (None: the flushed one)."""
        if how == "nothing":
            return None
        if how == "everything":
            return versions[-1]
        if how == "cut":
            older = [v for v in versions if v[0] < cut]
            return older[-1] if older else None
        if how == "mix":
            return versions[-1] if rng.random() < 0.5 else None
        i = rng.randint(-1, len(versions) - 1)
        return versions[i] if i >= 0 else None


def torn_cuts(e: Effect) -> list[int]:
    """Where a crash may cut a copy of more than one word: after its first word, half way,
    before its last word (copies run forward, word by word)."""
    n = len(e.data)
    if e.kind != DATA or n <= 8:
        return []
    return sorted({8, n // 2 & ~7, n - 8} - {0, n})


def materialize(image: Image, directory: str) -> None:
    """Write the image's files under their names into ``directory`` (which exists)."""
    for name, fid in image.names.items():
        fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, image.files[fid])
        finally:
            os.close(fd)


class LiveReplay:
    """Applies effects one at a time to a real directory that holds the snapshot."""

    def __init__(self, directory: str, snapshot: Snapshot) -> None:
        self.directory = directory
        self.fds = {
            fid: os.open(os.path.join(directory, name), os.O_RDWR)
            for name, fid in snapshot.names.items()
        }

    def apply(self, e: Effect) -> None:
        path = os.path.join(self.directory, e.name)
        if e.kind == DATA:
            os.pwrite(self.fds[e.fid], e.data, e.offset)
        elif e.kind == SIZE:
            fd = self.fds[e.fid]
            size = os.fstat(fd).st_size
            if e.size > size:
                os.posix_fallocate(fd, size, e.size - size)
            elif e.size < size:
                os.ftruncate(fd, e.size)
        elif e.kind == CREATE:
            self.fds[e.fid] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        elif e.kind == RENAME:
            os.replace(path, os.path.join(self.directory, e.dst))
        elif e.kind == UNLINK:
            os.unlink(path)
        elif e.kind == LINK:
            os.link(path, os.path.join(self.directory, e.dst))

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def take_snapshot(directory: str) -> tuple[Snapshot, dict[int, int]]:
    """The directory's regular files, and ``{inode: file id}``."""
    files: dict[int, bytes] = {}
    names: dict[str, int] = {}
    inodes: dict[int, int] = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        fid = inodes.setdefault(st.st_ino, len(inodes) + 1)
        with open(path, "rb") as f:
            files[fid] = f.read()
        names[name] = fid
    return Snapshot(files, names), inodes


def replay(snapshot: Snapshot, effects: list[Effect]) -> Image:
    """The process-crash image after all of ``effects``."""
    tracker = Tracker(snapshot)
    tracker.advance(effects, len(effects))
    return tracker.crash_image()
