"""The Kaggle FER2013 CSV (`emotion,pixels,Usage`, plain or gzip) and the course variant (`label,feature`
labelled, `id,feature` unlabelled): parsed with pyarrow in one pass, the first bad line named.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np

from fer_models.core.constants import EMOTIONS, IMAGE_SIZE
from fer_models.datasets.cache import cached, source_stamp
from fer_models.datasets.facedata import DataError, FaceData

N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
# FER2013 unpacked is 287 MB, and parsing takes about six times the text in memory: a CSV past this is refused
# before parsing (a 1.2 MB .csv.gz that unpacks to 930 MB took 31 s and 5.9 GB); bigger sets go in a .npz
MAX_CSV_BYTES = 512 << 20


def check_unpacked_size(path: Path) -> None:
    """DataError if the CSV, unpacked, is over MAX_CSV_BYTES: counted while inflating a .gz (its own size field
    is the size modulo 4 GB, and any file can claim any), so at most that much is ever inflated."""
    import zlib

    limit = f"over the {MAX_CSV_BYTES >> 20} MB a CSV may hold; save a dataset this big as a .npz instead"
    if path.suffix != ".gz":
        if path.stat().st_size > MAX_CSV_BYTES:
            raise DataError(f"{path}: {path.stat().st_size >> 20:,} MB, {limit}")
        return
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(8 << 20):
                total += len(chunk)
                if total > MAX_CSV_BYTES:
                    raise DataError(f"{path}: unpacks to more than {MAX_CSV_BYTES >> 20} MB, {limit}")
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a readable gzip file ({type(err).__name__})") from err


def read_csv(path, cache: bool = True, split_name: str | None = None) -> FaceData:
    path = Path(path)
    data = cached(path, source_stamp(path), _parse_csv) if cache else _parse_csv(path)
    data.source = str(path)
    if split_name and data.format == "course":
        data.splits = np.full(len(data), split_name)
    return data


def _parse_csv(path: Path) -> FaceData:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    check_unpacked_size(path)
    bad_rows = []

    def on_invalid(row):
        bad_rows.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            # one thread: Arrow's thread pool, torn down at interpreter exit, now and then aborted the process
            # ("terminate called without an active exception", apache/arrow#34314), and the trainer's exit code
            # with it; the parse costs 1.5 s instead of 1.2 for all of FER2013, once (it is cached)
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={
                c: pa.string() for c in ("emotion", "pixels", "Usage", "label", "feature", "id")}),
        )
    except pa.ArrowCancelled:  # pyarrow takes Ctrl-C over while it parses: pass it on as the interrupt it is
        raise KeyboardInterrupt from None
    except (pa.ArrowInvalid, OSError, EOFError, UnicodeDecodeError) as err:
        # the reason without what follows its first colon: pyarrow goes on to quote the offending row, and this
        # message reaches a page (a path typed on the Train page must not show a secret's first line)
        reason = str(err).splitlines()[0].split(": ", 1)[0] if str(err) else type(err).__name__
        raise DataError(f"{path}: not a readable CSV file ({reason})") from err
    if bad_rows:
        row = bad_rows[0]
        line = row.number or _line_of(path, row.text)  # pyarrow knows the number only when parsing serially
        raise DataError(f"{path}: line {line}: expected {row.expected_columns} comma-separated "
                        f"columns, found {row.actual_columns}")
    columns = table.column_names
    if "pixels" in columns or "emotion" in columns:
        pixel_col, label_col, kind = "pixels", "emotion", "kaggle"
        needed = ["emotion", "pixels", "Usage"]
    elif "feature" in columns:
        pixel_col, kind = "feature", "course"
        label_col = "label" if "label" in columns else "id"
        needed = ["feature", label_col] if ("label" in columns or "id" in columns) else ["label or id", "feature"]
    else:
        needed = ["emotion", "pixels", "Usage"]
    missing = [c for c in needed if c not in columns]
    if missing:
        # the columns found are not quoted back: they are the file's first line, whatever file it is
        raise DataError(f"{path}: its first line lacks the column(s) {', '.join(missing)}. Expected the Kaggle "
                        "FER2013 columns emotion,pixels,Usage or the course columns label,feature (labelled) / "
                        "id,feature (unlabelled)")
    n = table.num_rows
    images = _parse_pixels(path, table.column(pixel_col))
    if kind == "kaggle":
        labels = _parse_labels(path, table.column("emotion").to_pylist())
        splits = np.array(table.column("Usage").to_pylist(), dtype=object)
        empty = [i for i, s in enumerate(splits) if not s]
        if empty:
            raise DataError(f"{path}: line {empty[0] + 2}: empty Usage (split name)")
        ids = np.arange(n).astype(str)
    elif label_col == "label":
        labels = _parse_labels(path, table.column("label").to_pylist())
        splits = np.full(n, "Training", dtype=object)
        ids = np.arange(n).astype(str)
    else:
        labels = np.full(n, -1, dtype=np.int64)
        splits = np.full(n, "Test", dtype=object)
        ids = np.array(table.column("id").to_pylist(), dtype=object).astype(str)
    return FaceData(images, labels, splits.astype(str), ids, str(path), format=kind)


def _line_of(path: Path, text: str) -> int | str:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip("\r\n") == text:
                return number
    return "?"


def _parse_labels(path: Path, values: list) -> np.ndarray:
    labels = np.empty(len(values), dtype=np.int64)
    valid = {str(i): i for i in range(len(EMOTIONS))}
    for i, v in enumerate(values):
        label = valid.get((v or "").strip())
        if label is None:
            raise DataError(f"{path}: line {i + 2}: the label is not one of 0..6 "
                            f"({', '.join(f'{k} {e}' for k, e in enumerate(EMOTIONS))})")
        labels[i] = label
    return labels


def _parse_pixels(path: Path, column) -> np.ndarray:
    """All rows' pixel strings to uint8 N x 1 x 48 x 48.

    The fast path hands the whole column to one C parse (np.fromstring), several times faster than
    per-row parsing (bench/data_load.py). Only if the result does not add up
    do we walk the rows one by one, to name the first bad line.
    """
    import pyarrow.compute as pc

    column = column.combine_chunks()
    n = len(column)
    if n == 0:
        return np.zeros((0, 1, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    if column.null_count == 0:
        _, offset_buf, data_buf = column.buffers()
        offsets = np.frombuffer(offset_buf, np.int32)[column.offset:column.offset + n + 1].tolist()
        spaces = pc.count_substring(column, " ").to_numpy(zero_copy_only=False)
        if (spaces == N_PIXELS - 1).all() and all(a < b for a, b in zip(offsets, offsets[1:])):
            text = memoryview(data_buf)
            joined = b" ".join(text[a:b] for a, b in zip(offsets, offsets[1:]))  # one copy, no big temporaries
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # older numpy warns where 2.x raises
                    values = np.fromstring(joined, dtype=np.int32, sep=" ")
            except ValueError:  # a token that is not an integer; the row walk below names it
                values = np.zeros(0, np.int32)
            if values.size == n * N_PIXELS and values.min() >= 0 and values.max() <= 255:
                return values.astype(np.uint8).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    # the slow path names the first bad line, and accepts what the fast one refuses but is fine (extra spaces)
    rows = [_parse_pixel_row(path, i + 2, row) for i, row in enumerate(column.to_pylist())]
    return np.stack(rows).reshape(n, 1, IMAGE_SIZE, IMAGE_SIZE)


def _parse_pixel_row(path: Path, line: int, row: str | None) -> np.ndarray:
    tokens = (row or "").split()
    if len(tokens) != N_PIXELS:
        raise DataError(f"{path}: line {line}: expected {N_PIXELS} pixel values (48x48), found {len(tokens)}")
    for k, tok in enumerate(tokens):
        if not (tok.isascii() and tok.isdigit()):  # '²' is a Unicode digit that int() refuses
            raise DataError(f"{path}: line {line}: pixel {k + 1} is not an integer 0..255")
        if int(tok) > 255:
            raise DataError(f"{path}: line {line}: pixel {k + 1} is above 255")
    return np.array(tokens, dtype=np.uint8)
