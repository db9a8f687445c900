"""A run evaluated from the dashboard: `fer-studio evaluate` as a child process per split, the faces it has scored
read from its stderr as they come, so the Train page's bar moves."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from functools import partial

from fer_models.core.constants import PROGRESS
from fer_models.runs.folder import RunProblem, valid_split
from fer_models.runs.jobs import ROOT


def evaluate(run, data, splits: list[str], timeout: float = 3600, progress=None) -> list[dict]:
    """`fer-studio evaluate` on each split, as a child process; one dict (its JSON line, or the error) per split.
    `progress(split, done, total)` as the child scores faces (done = 0 once it has read them)."""
    results = []
    for split in splits:
        try:
            valid_split(split)
        except RunProblem as err:
            results.append({"split": split, "error": str(err)})
            continue
        command = [sys.executable, "-m", "fer_models", "evaluate", "--run", str(run), "--data", str(data),
                   "--split", split, "--progress"]
        code, out, err = _run_reading_progress(command, timeout, partial(progress, split) if progress else None)
        lines = (out if code == 0 else (err or out)).strip().splitlines()
        if code == 0 and lines:
            results.append({"split": split, **json.loads(lines[-1])})
        else:
            results.append({"split": split, "error": lines[-1] if lines else f"exit code {code}"})
    return results


def _run_reading_progress(command: list[str], timeout: float, progress) -> tuple[int, str, str]:
    """Run the child, passing its PROGRESS lines on (to `progress`, if any) as they come; (exit code, stdout, the
    rest of stderr). Past
    `timeout` seconds it is killed and reads as failed."""
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
    late = []
    watchdog = threading.Timer(timeout, lambda: late.append(child.kill()))
    watchdog.start()
    try:
        out = []  # stdout drained beside stderr: a child blocked on a full pipe would never finish
        reader = threading.Thread(target=lambda: out.append(child.stdout.read()), daemon=True)
        reader.start()
        rest = []
        for line in child.stderr:
            if line.startswith(PROGRESS):
                try:
                    done, total = map(int, line[len(PROGRESS):].split())
                except ValueError:
                    continue
                if progress is not None:
                    progress(done, total)
            else:
                rest.append(line)
        reader.join()
        code = child.wait()
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
    if late:
        rest.append(f"error: the evaluation took over {timeout:.0f} s and was stopped\n")
    return code, "".join(out), "".join(rest)
