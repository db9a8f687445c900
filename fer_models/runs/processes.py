"""Is a process alive, and is it the trainer of a given run? Pids come from run folders, which are
untrusted: nothing is signalled unless /proc shows it is this run's own trainer."""
from __future__ import annotations

import os
import time
from pathlib import Path


def alive(pid) -> bool:
    try:
        pid = int(pid)
        if pid <= 0:  # 0 and negatives name process groups, never one process
            return False
        os.kill(pid, 0)
    except (OSError, TypeError, ValueError, OverflowError):
        return False
    return True


def our_running_child(pid) -> bool:
    """A process this one started that has not exited: job.json is the run folder's, untrusted, and no pid it
    names can make another process this one's child."""
    try:
        return os.waitpid(int(pid), os.WNOHANG) == (0, 0)
    except (ChildProcessError, TypeError, ValueError, OverflowError, OSError):
        return False


def alive_or_zombie(pid) -> bool:
    """Alive, after reaping it if it is our own finished child (which would otherwise look alive)."""
    try:
        done, _ = os.waitpid(int(pid), os.WNOHANG)
        if done:
            return False
    except (ChildProcessError, TypeError, ValueError, OverflowError, OSError):
        pass
    return alive(pid)


def command_line(pid) -> list[str]:
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, TypeError, ValueError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


_PYTHON_SWITCHES = {"-u", "-B", "-E", "-I", "-O", "-OO", "-s", "-S", "-q"}  # interpreter options that take no value


def _runs_trainer(args: list[str]) -> bool:
    """Python itself running the trainer: `python [-u ...] -m fer_models train ...`, the console script
    (`python .../fer-studio train ...`), or torchrun running the module (`python -m torch.distributed.run ...
    -m fer_models train ...`, or the torchrun script). `-m` must be the interpreter's own option, not an
    argument of a `-c` program."""
    if not args or not Path(args[0]).name.startswith("python"):
        return False
    i = 1
    while i < len(args) and args[i] in _PYTHON_SWITCHES:
        i += 1
    if args[i:i + 3] == ["-m", "fer_models", "train"]:
        return True
    if i < len(args) and Path(args[i]).name == "fer-studio" and args[i + 1:i + 2] == ["train"]:
        return True
    torchrun = args[i:i + 2] == ["-m", "torch.distributed.run"] or (i < len(args) and Path(args[i]).name == "torchrun")
    rest = args[i + 1:]
    return torchrun and any(rest[j:j + 3] == ["-m", "fer_models", "train"] for j in range(len(rest)))


def is_trainer_of(pid, run) -> bool:
    """True if `pid` is Python running the trainer (`fer_models train`, directly or under torchrun) on this run
    folder, with an --out that resolves to `run`."""
    if not alive(pid):
        return False
    args = command_line(pid)
    # a child just launched through vfork can be seen mid-exec, before its new arguments are mapped: its command
    # line reads empty for a moment (the launcher then called a starting job "failed"); a kernel thread's stays so
    for _ in range(20):
        if args or not alive(pid):
            break
        time.sleep(0.01)
        args = command_line(pid)
    if not _runs_trainer(args) or "--out" not in args[:-1]:
        return False
    out = args[args.index("--out") + 1]
    try:
        cwd = Path(os.readlink(f"/proc/{int(pid)}/cwd"))
    except OSError:
        return False
    return (cwd / out).resolve() == Path(run).resolve()


def trainer_alive(pid, run) -> bool:
    """The process a run folder names is alive and is still this run's trainer: after a reboot or a kill the
    pid may belong to another process, which must not keep the run "running" (or a device busy) for ever."""
    return alive_or_zombie(pid) and is_trainer_of(pid, run)
