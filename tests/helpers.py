"""Test data and run folders made on the fly, so the suite needs no dataset on disk."""
import gzip
import json
import re
from pathlib import Path

import numpy as np

from fer_models.core.constants import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]


def synthetic_faces(n: int, seed: int = 0):
    """Images whose class is a bright horizontal band at a class-specific height, plus noise:
    easy enough that a couple of epochs of cnn3 learn it, so training tests can see learning."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(EMOTIONS)
    images = rng.integers(0, 70, (n, 48, 48))
    for i, c in enumerate(labels):
        images[i, c * 6 + 3:c * 6 + 9, 4:44] += 150
    return images.astype(np.uint8), labels


def write_fer_csv(path, sizes=None, seed=0, gz=False, header="emotion,pixels,Usage"):
    sizes = sizes or {"Training": 210, "PublicTest": 70}
    lines = [header]
    offset = 0
    for usage, n in sizes.items():
        images, labels = synthetic_faces(n, seed + offset)
        offset += 1
        for img, lab in zip(images, labels):
            lines.append(f"{lab},{' '.join(map(str, img.ravel()))},{usage}")
    text = "\n".join(lines) + "\n"
    path = Path(path)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def make_run(root, name, status, history_rows=(), meta=None, evaluation=None):
    run = root / name
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps(status))
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "epochs": 5}}))
    if history_rows:
        lines = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds"]
        lines += [f"{e},1.0,0.5,1.1,{acc},0.01,3.0" for e, acc in enumerate(history_rows, start=1)]
        (run / "history.csv").write_text("\n".join(lines) + "\n")
    if meta:
        (run / "meta.json").write_text(json.dumps(meta))
    if evaluation:
        folder = run / "eval" / evaluation
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"split": evaluation, "accuracy": 0.5}))
        (folder / "predictions.csv").write_text("id,true,pred\n007,3,3\n8,1,0\n")
        (folder / "confusion.csv").write_text("true," + ",".join(EMOTIONS) + "\n" + "".join(
            f"{e}," + ",".join("1" if i == j else "0" for j in range(7)) + "\n" for i, e in enumerate(EMOTIONS)))
    return run


def make_evaluated_run(root, name="evaluated", n=35):
    """A cnn3 run (untrained weights) evaluated by fer_models.evaluation.evaluate on synthetic faces saved as a .npz."""
    import torch

    from fer_models.datasets.facedata import FaceData
    from fer_models.evaluation.evaluate import evaluate_run
    from fer_models.nets.models import create_model
    from fer_models.runs.checkpoints import save_model

    images, labels = synthetic_faces(n, seed=3)
    data = root / f"{name}_faces.npz"
    FaceData(images[:, None], labels.astype(np.int64), np.full(n, "PublicTest"),
             np.array([str(100 + i) for i in range(n)]), format="npz").save_npz(data)
    torch.manual_seed(0)
    run = root / name
    save_model(run, create_model("cnn3"), {"classes": list(EMOTIONS), "normalisation": {"mean": 0.2, "std": 0.2}})
    (run / "status.json").write_text(json.dumps({"state": "finished"}))
    evaluate_run(run, data, "PublicTest")
    return run


def bundled_faces():
    """The shipped PublicTest faces, N x 1 x 48 x 48 uint8."""
    return np.load(ROOT / "artifacts" / "data" / "fer2013_publictest.npz")["images"]


def face_photo(face_index=2, angle=0.0, size=160, at=(380, 150), shape=(480, 640), extra=()):
    """A bundled face enlarged, turned by `angle`° (counter-clockwise) and pasted on a smooth
    background; `extra` pastes more faces as (index, size, (x, y)). Faces 2 and 5 are ones the
    frontal cascade finds (many FER2013 crops are too tight for it), and the crop's edge must
    stand out from the background as a real head does."""
    import cv2

    rng = np.random.default_rng(1)
    canvas = cv2.GaussianBlur(rng.integers(60, 200, shape).astype(np.uint8), (0, 0), 8)
    for index, side, (x, y), turn in [(face_index, size, at, angle), *[(*e, 0.0) for e in extra]]:
        face = cv2.resize(bundled_faces()[index, 0], (side, side), interpolation=cv2.INTER_CUBIC)
        m = cv2.getRotationMatrix2D((side / 2, side / 2), turn, 1.0)
        canvas[y:y + side, x:x + side] = cv2.warpAffine(face, m, (side, side), borderMode=cv2.BORDER_REPLICATE)
    return np.repeat(canvas[..., None], 3, axis=2)


def make_reported_run(root):
    """An evaluated cnn3 run with a three-epoch history, and its report written by the CLI (one face per
    class, one filter, to keep it quick): (run folder, report path)."""
    from fer_models.teaching.report import main

    run = make_evaluated_run(root, "reported")
    lines = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds"]
    lines += [f"{e},{2 - e / 4},{0.2 + e / 10},{2.1 - e / 5},{acc},0.01,3.0"
              for e, acc in enumerate((0.3, 0.45, 0.4), 1)]
    (run / "history.csv").write_text("\n".join(lines) + "\n")
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "epochs": 3}}))
    out = root / "report.html"
    assert main(["--run", str(run), "--out", str(out), "--faces-per-class", "1", "--filters", "1"]) == 0
    return run, out


def shown(text: str) -> str:
    """Markdown source as a reader sees it: the pages escape untrusted text (app_pages._shared.md) and keep bare
    web addresses unlinked with a zero-width space and keep a hyphenated name whole with a word joiner, which no one
    sees."""
    return re.sub(r"\\(.)", r"\1", text).replace("\u200b", "").replace("\u2060", "")


def open_app(page=None, run=None, query=None, state=None, timeout=120):
    """The dashboard in Streamlit's AppTest, on `page` (a file under app_pages/) with `run` in the URL,
    more query parameters and session state set first; asserts that no exception was drawn."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    if run:
        at.query_params["run"] = run
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def wait_for(check, timeout: float = 240, what: str = "the condition", poll: float = 0.2):
    """Poll check() until it returns something truthy, and return that; fail after `timeout` seconds
    saying what was awaited (the one waiting helper of the suite: no test sleeps a fixed time)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s")
        time.sleep(poll)


def training_started(run) -> bool:
    """The job is past loading its data: a step is done, or an epoch (a tiny epoch can end between two of
    the trainer's status writes, which come every 2 s, so the step it reports may always read 0)."""
    from fer_models.runs.jobs import job_state

    state = job_state(run)
    return bool(state.get("step")) or (state.get("epoch") or 0) > 1


def wait_for_job(run, states, timeout: float = 240) -> dict:
    """The launcher's view of a job once its state is one of `states`; fails with the job's log."""
    from fer_models.runs.jobs import job_state, log_tail

    try:
        return wait_for(lambda: (lambda s: s if s["state"] in states else None)(job_state(run)), timeout,
                        f"{run} to be {' or '.join(sorted(states))}")
    except AssertionError as err:
        raise AssertionError(f"{err}; it is {job_state(run)['state']}; log:\n{log_tail(run)}") from None



def write_clip(path, frames=24, shape=(240, 320), fps=24, step=3, codec="libx264", face=True):
    """A short clip: a bundled face (one the frontal cascade finds) moving `step` pixels a frame over a smooth
    background, encoded with PyAV. Returns the path."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = shape[1], shape[0], "yuv420p"
        for i in range(frames):
            picture = face_photo(2, size=110, at=(40 + step * i, 60), shape=shape) if face else \
                np.full((*shape, 3), 128, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def bundled_ids():
    return np.load(ROOT / "artifacts" / "data" / "fer2013_publictest.npz")["ids"]


def astronaut():
    """scikit-image's sample photo of Eileen Collins (public domain): a real face, offline, 512 x 512 RGB."""
    from skimage.data import astronaut as photo

    return photo()


def tilting_head(i: int) -> np.ndarray:
    """Video frame i (480 x 640 x 3 RGB): the astronaut's head, 1.6x, turned by 25° sin(i / 12) about the chin."""
    import cv2

    photo = cv2.resize(astronaut(), None, fx=1.6, fy=1.6, interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D((360, 300), 25 * np.sin(i / 12), 1.0)
    m[:, 2] -= (40, 0)
    return cv2.warpAffine(photo, m, (640, 480), borderMode=cv2.BORDER_REPLICATE)


def run_cli(main, argv, capsys) -> tuple[int, str]:
    """A command's exit code and its one line on stderr (asserted: one line, no traceback)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse exits on a bad argument
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return code, lines[0]
