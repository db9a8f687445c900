"""`python -m fer_models …` for the tests, forked from a warm process instead of started cold.

A cold start of the command line paid 5-6 s of CPU before any work: importing torch (2.5 s) and, at the first
optimizer, torch._dynamo (2.4 s), most of what a tiny test run costs, some sixty times a suite. Here one
forkserver per test process imports them once and forks each command from it. Each command is still a process
of its own: its exit code (or the signal that killed it), its own globals, threads and signal handlers, its
environment and working directory as given, stdout and stderr in files; only the imports are shared. The
forkserver itself never runs a torch operation, so no thread pool is forked.

The tests that compare training trajectories across processes (tests/test_trajectory.py, the distillation test)
start cold: in the full suite, warm children of one forkserver gave two identical commands different losses
(not reproduced alone, under load or after the other command-line tests), and cold is how the product trains.
"""
import multiprocessing
import os
import subprocess
import sys
import tempfile
import traceback

_PRELOAD = ["torch", "torch._dynamo", "fer_models.cli", "fer_models.training.command",
            "fer_models.evaluation.evaluate"]
_context = None


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(_PRELOAD)
    return _context


def _command(argv, env, cwd, out, err):
    os.environ.clear()
    os.environ.update(env)
    if cwd:
        os.chdir(cwd)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    if env.get("OMP_NUM_THREADS"):  # read by OpenMP when torch loaded, in the forkserver: applied here
        import torch
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    from fer_models.cli import main
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except BaseException:  # noqa: BLE001 - as a cold start: the traceback on stderr, exit status 1
        traceback.print_exc()
        code = 1
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def run(argv, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """As subprocess.run([sys.executable, "-m", "fer_models", *argv], env=env, cwd=cwd, capture_output=True,
    text=True, timeout=timeout)."""
    argv = [str(a) for a in argv]
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        child = _forkserver().Process(target=_command, args=(argv, dict(env or os.environ), cwd, out, err))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(argv, timeout)
        with open(out) as o, open(err) as e:
            return subprocess.CompletedProcess(["fer_models", *argv], child.exitcode, o.read(), e.read())

