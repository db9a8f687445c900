"""Files from run folders, datasets and uploads are untrusted: a pipe, a folder, a zip bomb or a header that
promises gigabytes is refused from its metadata, quickly, with one line; a page that meets one says so and
every other run keeps working."""
import io
import json
import os
import struct
import threading
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fer_models.core.guards import UntrustedFileError, npz_members, safetensors_header
from fer_models.datasets.facedata import DataError
from fer_models.datasets.loading import load_faces
from fer_models.runs.checkpoints import CheckpointError, load_model
from fer_models.runs.registry import faces_source
from helpers import make_evaluated_run, open_app, shown


def within(seconds, call):
    """call() in a thread; fails if it has not returned after `seconds` (a read of a pipe blocks for ever)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except Exception as err:  # noqa: BLE001 - handed to the test
            outcome["error"] = err
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def run(tmp_path):
    return make_evaluated_run(tmp_path, "small")


def test_a_pipe_or_a_folder_as_the_weights_is_refused_not_read(run):
    weights = run / "model.safetensors"
    weights.unlink()
    os.mkfifo(weights)
    with pytest.raises(CheckpointError, match="not a regular file"):
        within(10, lambda: load_model(run))
    weights.unlink()
    weights.mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        within(10, lambda: load_model(run))


def test_a_sparse_file_declaring_a_huge_tensor_is_refused_from_its_header(run, tmp_path):
    weights = run / "model.safetensors"
    header = json.dumps({"block1.conv.weight": {"dtype": "F32", "shape": [400_000_000],
                                                "data_offsets": [0, 1_600_000_000]}})
    with open(weights, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode())
        f.truncate(8 + len(header) + 1_600_000_000)  # sparse: 1.6 GB on paper, nothing on disk
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="weights do not fit architecture cnn3"):
        load_model(run)  # its header does not fit cnn3: refused before a byte of data is mapped
    assert time.perf_counter() - started < 5


def test_dataset_paths_that_are_not_datasets_are_refused_before_opening(tmp_path):
    secret = tmp_path / "settings.env"
    secret.write_text("API_KEY=sk-do-not-show\n")
    for path, words in ((secret, "not a dataset file"), (tmp_path / "missing.csv", "no such file")):
        with pytest.raises(DataError, match=words) as err:
            load_faces(path)
        assert "sk-do-not-show" not in str(err.value)
    pipe = tmp_path / "data.csv"
    os.mkfifo(pipe)
    with pytest.raises(DataError, match="not a regular file"):
        within(10, lambda: load_faces(pipe))
    with pytest.raises(DataError, match="not a regular file"):
        within(10, lambda: load_faces("/dev/zero"))


def test_a_csv_whose_first_line_is_a_secret_is_not_quoted(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("API_KEY=sk-do-not-show\nx\n")
    with pytest.raises(DataError) as err:
        load_faces(secret)
    assert "sk-do-not-show" not in str(err.value) and "first line lacks" in str(err.value)


def test_a_recorded_data_path_of_the_root_is_not_walked(run, tmp_path, monkeypatch):
    started = time.perf_counter()
    assert faces_source({"data": "/"}, "Training") is None  # "/" is not laid out as class folders
    assert time.perf_counter() - started < 2
    metrics = run / "eval" / "PublicTest" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "data": "/"}))
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    for page in ("app_pages/mistakes.py", "app_pages/confusion.py"):
        started = time.perf_counter()
        open_app(page, run="small", query={"cell": "3-3"})  # asserts no exception
        assert time.perf_counter() - started < 30, page


def test_an_atlas_zip_bomb_is_ignored_without_inflating(run):
    from fer_models.explain.atlas import load_atlas

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("responses.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_2_0(member, {"descr": "<f4", "fortran_order": False,
                                                          "shape": (1 << 28,)})
            chunk = bytes(1 << 20)
            for _ in range(1024):  # 1 GB of zeros, a megabyte or so compressed
                member.write(chunk)
    (run / "atlas.npz").write_bytes(bomb.getvalue())
    assert (run / "atlas.npz").stat().st_size < 8 << 20
    started = time.perf_counter()
    assert load_atlas(run, "block3.conv", ["1"]) is None
    assert time.perf_counter() - started < 2


def test_an_npz_with_fewer_labels_than_images_says_so(tmp_path):
    path = tmp_path / "faces.npz"
    np.savez(path, images=np.zeros((5, 1, 48, 48), np.uint8), labels=np.zeros(3, np.int64),
             splits=np.array(["Training"] * 5), ids=np.array([str(i) for i in range(5)]))
    with pytest.raises(DataError, match="5 images but labels of shape"):
        load_faces(path)


def test_a_page_says_what_is_wrong_with_a_pipe_for_weights(run, tmp_path, monkeypatch):
    (run / "model.safetensors").unlink()
    os.mkfifo(run / "model.safetensors")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = within(60, lambda: open_app("app_pages/saliency.py", run="small"))
    assert any("not a regular file" in shown(e.value) for e in at.error)


# ---------------------------------------------------------------- headers made up by hypothesis

entries = st.dictionaries(st.text(min_size=1, max_size=8), st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "I64", "U8", "X9", 3]),
    "shape": st.lists(st.one_of(st.integers(-2, 6), st.just(10 ** 12), st.text(max_size=2)), max_size=3),
    "data_offsets": st.lists(st.integers(-5, 2000), min_size=0, max_size=3)}), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=entries, data=st.binary(max_size=600), declared=st.one_of(st.none(), st.integers(0, 2**63)))
def test_any_safetensors_header_is_checked_or_refused_in_one_line(tmp_path, header, data, declared):
    text = json.dumps(header).encode()
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(text) if declared is None else declared) + text + data)
    try:
        checked = safetensors_header(path)
    except UntrustedFileError as err:
        assert "\n" not in str(err)
        return
    for entry in checked.values():  # whatever passes lies inside the file and fits its shape
        begin, end = entry["data_offsets"]
        assert 0 <= begin <= end <= len(data)


@settings(max_examples=100, deadline=None)
@given(shape=st.lists(st.integers(0, 10 ** 9), max_size=3), declared_size=st.integers(0, 10 ** 10),
       dtype=st.sampled_from(["<f4", "|u1", "|O", "<U3"]))
def test_any_npz_member_header_is_checked_before_numpy_allocates(shape, declared_size, dtype):
    body = io.BytesIO()
    np.lib.format.write_array_header_1_0(body, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.npy", body.getvalue() + bytes(64))
    try:
        arrays = npz_members(archive.getvalue(), limit=declared_size)
    except UntrustedFileError as err:
        assert "\n" not in str(err)
        return
    (got_shape, got_dtype), = arrays.values()
    assert not got_dtype.hasobject and np.prod(got_shape) * got_dtype.itemsize <= 64


def test_odd_url_parameters_and_a_metrics_file_without_scores_are_said_not_raised(run, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app("app_pages/mistakes.py", run="small", query={"page": "²"})  # a digit to isdigit(), not to int()
    assert not at.exception
    metrics = run / "eval" / "PublicTest" / "metrics.json"
    bare = {k: v for k, v in json.loads(metrics.read_text()).items() if k not in ("accuracy", "macro_f1", "ece")}
    metrics.write_text(json.dumps(bare))
    at = open_app("app_pages/confusion.py", run="small")
    assert any("lacks Accuracy, Macro F1, Calibration (ECE)" in shown(w.value) for w in at.warning)


url_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=st.sampled_from(["app_pages/mistakes.py", "app_pages/confusion.py", "app_pages/saliency.py"]),
       query=st.fixed_dictionaries({}, optional={k: url_text for k in ("face", "split", "page", "cell", "true",
                                                                       "pred", "votes", "order", "with", "set")}))
def test_any_url_parameters_open_every_page_without_an_exception(run, tmp_path, monkeypatch, page, query):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    open_app(page, run="small", query=query)  # asserts no exception box
