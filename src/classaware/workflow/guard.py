"""The guard of one stage that ``classaware repro`` runs: it stops the stage, with everything the
stage started, when ``classaware repro`` stops it or ends, however it ends (SIGKILL included).

Run as a script (``python guard.py FD GRACE -- COMMAND...``), by path, so that it imports nothing
but the standard library. ``classaware repro`` starts it in a session of its own, so the guard
leads a process group that holds ``COMMAND`` (``dvc repro --single-item STAGE``), the stage's
shell and the stage's own command. ``FD`` is the read end of a pipe whose only write end
``classaware repro`` holds: it closes it to stop every stage, and the kernel closes it when that
process ends, for whatever reason. Either way the read returns end-of-file and the guard stops
its stage (:func:`stop`). A pipe rather than the parent's process id: no polling, and no process
id that the system may hand to another process.

How a stage stops: SIGINT to every process of the group but DVC and the guard (the stage's shell
and command, and any it started since), so the command stops (``classaware CMD: interrupted``)
and DVC, seeing it fail, commits nothing to dvc.lock and exits on its own. DVC itself is not
interrupted while it checks, hashes or commits: a Ctrl-C there can leave DVC's lock files cut
short (dvc#7615); a stage that had finished its command is committed, in seconds. Only what still
runs ``GRACE`` seconds later gets SIGINT (DVC too), after twice that SIGTERM, after three times
SIGKILL (the guard included). Without ``/proc`` (not Linux) the whole group gets SIGINT at once.

Why not ``prctl(PR_SET_PDEATHSIG)`` on DVC: it is sent when the *thread* that started the child
ends, and reaches only that child, DVC, which ignores SIGINT while the stage's command runs and,
killed, leaves that command running. Nor is a shared process group enough: ``kill -9`` of the
parent's process id reaches no child.

The guard ignores what it sends to its group (its handlers do nothing; a caught signal is reset
for the command it starts, where SIG_IGN would be inherited), waits for the command and exits
with its status (128 + N when a signal N ended it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _ignore(signum, frame) -> None:  # a handler, not SIG_IGN: the command would inherit SIG_IGN
    pass


def group_members(pgid: int) -> list[int] | None:
    """The processes of process group ``pgid`` (from /proc), or None where there is no /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").is_file():
        return None
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":  # after the name: state, ppid, pgrp
                    found.append(int(entry.name))
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop(child: subprocess.Popen, grace: float) -> None:
    """Stop the stage whose DVC is ``child`` (see the module docstring), until ``child`` has ended."""
    me, group = os.getpid(), os.getpgrp()
    start, signalled, escalated = time.monotonic(), set(), set()
    while child.poll() is None:
        waited = time.monotonic() - start
        members = group_members(group)
        if waited >= 3 * grace:
            os.killpg(group, signal.SIGKILL)  # the guard too: nothing of the stage outlives this
        elif waited >= 2 * grace and signal.SIGTERM not in escalated:
            escalated.add(signal.SIGTERM)
            os.killpg(group, signal.SIGTERM)
        elif members is None and signal.SIGINT not in escalated:
            escalated.add(signal.SIGINT)
            os.killpg(group, signal.SIGINT)
        elif members is not None:
            spared = {me} if waited >= grace else {me, child.pid}
            for pid in set(members) - spared - signalled:
                signalled.add(pid)
                _signal(pid, signal.SIGINT)
        time.sleep(0.2)


def _watch(fd: int, child: subprocess.Popen, grace: float) -> None:
    while os.read(fd, 1):  # nobody writes: this returns only at end-of-file
        pass
    stop(child, grace)


def main(argv: list[str]) -> int:
    fd, grace, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: guard.py FD GRACE -- COMMAND...")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _ignore)
    child = subprocess.Popen(command)
    threading.Thread(target=_watch, args=(int(fd), child, float(grace)), daemon=True).start()
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
