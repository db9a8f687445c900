"""Checks made on an untrusted file before it is decoded: run folders, datasets and uploads come from other
machines and other people, so a FIFO, a device, a zip bomb or a header that promises gigabytes is refused
here, from its metadata, with a one-line reason, before a byte of payload is read or allocated.

    regular_file(path, "model.safetensors")     # a FIFO would block a page, a device never end
    capped_bytes(path, limit=50 << 20)          # a regular file's bytes, its size checked before reading
    npz_members(path_or_bytes, limit=256 << 20) # every member's declared and real size, within the limit
    safetensors_header(path)                    # names, dtypes, shapes and byte ranges, checked
"""
from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np


class UntrustedFileError(ValueError):
    """A file refused from what it declares about itself; the message names the file and why."""


def file_kind(mode: int) -> str:
    """What a file of this st_mode is, in words, for messages: a FIFO called "no such file" sends its owner
    looking for a file that is right there."""
    for test, words in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
                        (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "a special file"


def regular_file(path, what: str | None = None) -> Path:
    """`path` if it is a regular file (symlinks followed); else UntrustedFileError naming what it is."""
    path = Path(path)
    name = what or str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UntrustedFileError(f"{name}: " + ("is a link to nothing" if path.is_symlink() else "no such file")) \
            from None
    except OSError as err:
        raise UntrustedFileError(f"{name}: cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise UntrustedFileError(f"{name}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise UntrustedFileError(f"{name}: is {file_kind(mode)}, not a regular file: nothing was read")
    return path


def capped_bytes(path, limit: int, what: str | None = None) -> bytes:
    """The bytes of `path`, a regular file (symlinks followed) of at most `limit` bytes; else UntrustedFileError.
    Its kind and size come from the open file before a byte is read: a sparse 3 GB "photo" costs nothing, and a
    FIFO, opened without waiting for a writer, is refused instead of blocking."""
    name = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        missing = "is a link to nothing" if Path(path).is_symlink() else "no such file"
        raise UntrustedFileError(f"{name}: {missing}") from None
    except OSError as err:
        raise UntrustedFileError(f"{name}: cannot be read ({err.strerror or err})") from None
    info = os.fstat(fd)  # before fdopen, which refuses a folder with an error of its own
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UntrustedFileError(f"{name}: is a folder, not a file")
        raise UntrustedFileError(f"{name}: is {file_kind(info.st_mode)}, not a regular file: nothing was read")
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1) if info.st_size <= limit else b""
    if info.st_size > limit or len(data) > limit:  # or it grew while read
        size = max(info.st_size, len(data))
        said = f"{size / 2**20:,.0f} MB" if round(size / 2**20) > round(limit / 2**20) else f"{size:,} bytes"
        raise UntrustedFileError(f"{name}: is {said}, over the {limit / 2**20:,.0f} MB allowed")
    return data


def npz_members(source, limit: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The arrays of an .npz (a path or its bytes) as {name: (shape, dtype)}, read from the zip directory and
    each member's .npy header only; UntrustedFileError if the members would inflate past `limit` bytes in
    all, if one holds Python objects (pickles), or if a header's shape needs more bytes than its member
    holds (numpy allocates the whole array from the header before reading it)."""
    name = source if isinstance(source, (str, Path)) else "the .npz"
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else regular_file(source)
    try:
        with zipfile.ZipFile(handle) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limit:
                raise UntrustedFileError(f"{name}: its arrays inflate to {total / 2**20:,.0f} MB, over the "
                                         f"{limit / 2**20:,.0f} MB allowed")
            arrays = {}
            for info in infos:
                with z.open(info) as member:
                    major, _ = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if major == 1 else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read_header(member)
                    data_bytes = info.file_size - member.tell()
                if dtype.hasobject:
                    raise UntrustedFileError(f"{name}: array {info.filename} holds Python objects; refused")
                if math.prod(shape) * dtype.itemsize > data_bytes:
                    raise UntrustedFileError(f"{name}: array {info.filename} declares {shape} of {dtype}, more "
                                             "than its data holds")
                arrays[info.filename.removesuffix(".npy")] = (tuple(shape), dtype)
            return arrays
    except UntrustedFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, SyntaxError, TypeError) as err:
        raise UntrustedFileError(f"{name}: not a readable .npz file ({type(err).__name__})") from None


_SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                       "BOOL": 1}
_MAX_HEADER = 16 << 20  # safetensors' own limit is 100 MB; ours holds a few thousand tensor entries with room


def safetensors_header(path) -> dict[str, dict]:
    """The tensors a .safetensors file declares, {name: {"dtype", "shape", "data_offsets"}}, checked against the
    file itself before any tensor is read: known dtypes, whole-number shapes, byte ranges that lie inside the
    file, match their shape and do not overlap. A sparse file declaring a 1.5 GB tensor is refused here, from
    its size, instead of being mapped and copied."""
    path = regular_file(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UntrustedFileError(f"{path}: too short for a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > min(_MAX_HEADER, size - 8):
            raise UntrustedFileError(f"{path}: its header claims {length:,} bytes, more than the file or the "
                                     f"{_MAX_HEADER >> 20} MB allowed")
        try:
            header = json.loads(f.read(length))
        except (ValueError, RecursionError):
            raise UntrustedFileError(f"{path}: its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise UntrustedFileError(f"{path}: its header is not a JSON object")
    header.pop("__metadata__", None)
    data_size, ranges = size - 8 - length, []
    for name, entry in header.items():
        ok = isinstance(entry, dict) and entry.get("dtype") in _SAFETENSORS_DTYPES and \
            isinstance(entry.get("shape"), list) and all(isinstance(d, int) and d >= 0 for d in entry["shape"]) and \
            isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2 and \
            all(isinstance(o, int) for o in entry["data_offsets"])
        if not ok:
            raise UntrustedFileError(f"{path}: tensor {name[:60]!r} is not described as safetensors describes one")
        begin, end = entry["data_offsets"]
        expected = math.prod(entry["shape"]) * _SAFETENSORS_DTYPES[entry["dtype"]]
        if not 0 <= begin <= end <= data_size or end - begin != expected:
            raise UntrustedFileError(f"{path}: tensor {name[:60]!r} declares {expected:,} bytes at {begin}..{end}, "
                                     f"which the file's {data_size:,} bytes of data do not hold")
        ranges.append((begin, end))
    ranges.sort()
    if any(a_end > b_begin for (_, a_end), (b_begin, _) in zip(ranges, ranges[1:])):
        raise UntrustedFileError(f"{path}: two tensors share bytes")
    return header
