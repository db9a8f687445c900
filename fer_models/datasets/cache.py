"""The parse cache: a dataset read once is saved as an uncompressed .npz beside it (or under
~/.cache/fer_studio, or $FER_STUDIO_CACHE, where that folder is read-only) and reread in a fraction
of a second until the source changes (its size and time, or for a folder every file's).
"""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from fer_models.core.guards import UntrustedFileError, npz_members
from fer_models.datasets.facedata import MAX_NPZ_BYTES, DataError, FaceData, checked

CACHE_VERSION = 2


def source_stamp(path: Path) -> str:
    st = path.stat()
    return f"v{CACHE_VERSION}:{st.st_size}:{st.st_mtime_ns}"


def files_stamp(root: Path, files: list[Path]) -> str:
    """Changes when any of `files` (a dataset's files under root) is added, removed, resized or touched."""
    digest = hashlib.sha1()
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return f"v{CACHE_VERSION}:{digest.hexdigest()}"


def cached(path: Path, stamp: str, parse) -> FaceData:
    """parse(path), or its result saved earlier under the same stamp."""
    where = cache_path(path)
    data = read_cache(where, stamp)
    if data is None:
        data = parse(path)
        try:  # uncompressed: loading it is then a plain read
            data.save_npz(where, compressed=False,
                          extra={"stamp": np.array(stamp), "notes": np.array(data.notes, dtype=str)})
        except OSError as err:  # a read-only place costs speed, not correctness
            warnings.warn(f"could not write the parse cache {where}: {err}", stacklevel=2)
    return data


def cache_path(path: Path) -> Path:
    """Next to the source when that folder is writable; else a per-user cache folder.

    A folder without write bits counts as read-only even for root, who could write there anyway:
    someone made it read-only on purpose (a shared dataset folder).
    """
    beside = path.with_name(path.name + ".cache.npz")
    if os.access(path.parent, os.W_OK) and path.parent.stat().st_mode & 0o222:
        return beside
    root = Path(os.environ.get("FER_STUDIO_CACHE", Path.home() / ".cache" / "fer_studio"))
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return root / f"{path.name}.{digest}.cache.npz"


def read_cache(cache_path: Path, stamp: str) -> FaceData | None:
    """The cached data, or None to parse again: missing, stale, damaged, or arrays that do not fit together
    (a cache is a file beside the dataset that anyone who can write there can replace)."""
    if not cache_path.exists():
        return None
    try:
        npz_members(cache_path, MAX_NPZ_BYTES)  # sizes from the headers, before any array is read
        with np.load(cache_path, allow_pickle=False) as z:
            if str(z["stamp"]) != stamp:
                return None
            return checked(FaceData(z["images"], z["labels"], z["splits"].astype(str), z["ids"].astype(str), "",
                                    z["soft"] if "soft" in z.files else None, z["notes"].tolist(),
                                    str(z["format"])), cache_path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UntrustedFileError, DataError):
        return None
