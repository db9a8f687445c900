"""Atomic file writes: a reader (the app, while a run trains) sees the old file or the new one, never half of one."""
import json
import os
import stat
import tempfile
from pathlib import Path

UMASK = os.umask(0)  # read once, at import: setting it again later would race with other threads
os.umask(UMASK)


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; a run folder should read like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_replace(path, write) -> None:
    """Call write(tmp_path) for writers that only take a path (np.savez, safetensors), then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def partial_beside(path) -> Path:
    """A new, empty file of our own beside `path` (created exclusively, under a random name), to be renamed over
    it when complete: a fixed name such as .out.csv.part could be a link someone planted, or an input file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~UMASK)
    return Path(tmp)


def replace_folder(path, build) -> None:
    """Call build(tmp_folder) to fill a new folder, then swap it in for `path` in two renames: a reader sees the
    old folder whole or the new one whole (at worst, for an instant, none), never new files beside stale ones.
    A failure leaves the old folder as it was."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old / path.name, path)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def unwritable(folder) -> str | None:
    """Why no file can be written in `folder` (it is missing, read-only, /proc, full...), found by writing an empty
    one there; None when it can. Asked before minutes of work whose result would then be lost."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        return err.strerror or str(err)
    return None


class OutputError(ValueError):
    """An output path refused before any work is done; the message names it, says why and what to do."""


def checked_output(path, flag: str | None = None, keep=()) -> Path:
    """`path` if a command may write its file there, else OutputError: never over a folder, a pipe, a device or
    a socket (an atomic write renames over whatever is there, so /dev/null itself would go), never in a folder
    that is missing or cannot be written, and never over one of `keep`, the (path, what) pairs of what the
    command reads (the input, a run's own files): a path equal to one, inside one, or the same file by a link."""
    path = Path(path)
    said = f"{flag} {path}" if flag else str(path)
    if path.is_symlink():  # the finished file is renamed over the link, not written where it points (/dev/stdout)
        raise OutputError(f"{said}: is a link; give the path of the file itself")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise OutputError(f"{said}: cannot be looked at ({err.strerror or err}); choose another path") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"{said}: is a folder, not a regular file; give the path of a file to write")
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"{said}: exists and is not a regular file (a pipe, a device or a socket), which is never "
                          "replaced; choose another path")
    target = path.resolve()
    for kept, what in keep:
        kept = Path(kept)
        same = target == kept.resolve() or (mode is not None and kept.exists() and os.path.samefile(path, kept))
        if same:
            raise OutputError(f"{said}: that is {what}, which writing would destroy; choose another path")
        if kept.resolve() in target.parents:
            raise OutputError(f"{said}: that lies inside {what}, whose files are not to be replaced; choose another "
                              "path")
    if not path.parent.is_dir():
        raise OutputError(f"{said}: its folder {path.parent} does not exist; create it or choose another path")
    if why := unwritable(path.parent):
        raise OutputError(f"{said}: cannot be written there ({why}); choose another folder")
    return path
