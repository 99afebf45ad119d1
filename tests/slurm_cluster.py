"""A throw-away one-node SLURM cluster for the tests: munged, slurmctld and slurmd started in
the foreground from a generated slurm.conf in a temporary folder, stopped by process id.

Needs root and Debian's packages (``apt-get install slurmctld slurmd slurm-client munge``, as
``.ci/run`` does). Nothing outside the folder is touched: the daemons get every path, port and
the munge socket from the folder's slurm.conf, and clients find it through SLURM_CONF in
:attr:`Cluster.env`. Known to work with SLURM 22.05 as root without systemd:
proctrack/linuxproc and task/none (no cgroups), select/cons_tres by core, SlurmUser root.
Finished jobs stay in squeue for an hour (MinJobAge), so a test can read every job's end state.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")


@dataclass(frozen=True)
class Cluster:
    env: dict  # os.environ plus SLURM_CONF: what every SLURM client call needs

    def ask(self, *cmd: str) -> str:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True).stdout.strip()

    def busy(self, workdir: Path | None = None) -> bool:
        """Whether any job is pending or running; with ``workdir``, any job that runs there (the
        session's SLURM run and a test's toy pipeline share the cluster: neither waits for the other)."""
        dirs = self.ask("squeue", "--noheader", "--format=%Z").splitlines()
        return any(workdir is None or os.path.realpath(d) == os.path.realpath(workdir) for d in dirs)

    def idle(self) -> bool:
        """Whether the node is up and free."""
        return self.ask("sinfo", "--noheader", "--format=%T") == "idle"


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return f"SLURM is not installed (no {', '.join(missing)}): apt-get install slurmctld slurmd slurm-client munge"
    if os.geteuid() != 0:
        return "starting slurmd and munged as another user needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_conf(folder: Path, node: str, munge_socket: Path) -> str:
    ctld_port, slurmd_port = _free_port(), _free_port()
    return f"""ClusterName=classaware-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/run/slurmctld.pid
SlurmdPidFile={folder}/run/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _munge_folder(folder: Path) -> tuple[Path, list[str]]:
    """A key (random bytes by dd, owner munge, mode 400) and munged's command line, every file
    in a folder only munge may write (munged refuses anything looser)."""
    munge = folder / "munge"
    munge.mkdir(mode=0o700)
    key = munge / "munge.key"
    subprocess.run(["dd", "if=/dev/urandom", f"of={key}", "bs=1", "count=1024", "status=none"], check=True)
    key.chmod(0o400)
    shutil.chown(key, "munge", "munge")
    shutil.chown(munge, "munge", "munge")
    sock = munge / "munge.socket.2"
    cmd = [
        "munged",
        "--foreground",
        "--force",
        f"--socket={sock}",
        f"--key-file={key}",
        f"--log-file={munge}/munged.log",
        f"--pid-file={munge}/munged.pid",
        f"--seed-file={munge}/munged.seed",
    ]
    return sock, cmd


def _wait_until(check, seconds: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-10:]) for p in logs if p.exists()
            )
            raise RuntimeError(f"{what} did not happen within {seconds} s\n{tails}")
        time.sleep(0.5)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each daemon by its process id, newest first; SIGKILL what has not exited in 10 s."""
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def one_node_cluster() -> Iterator[Cluster]:
    """Start munged, slurmctld and slurmd in a new temporary folder; on exit cancel every job of
    the cluster, stop the daemons by process id and remove the folder."""
    # not under pytest's tmp_path: its root is private to root, and munged runs as munge
    with tempfile.TemporaryDirectory(prefix="classaware-slurm-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        with _daemons(folder) as cluster:
            yield cluster


@contextmanager
def _daemons(folder: Path) -> Iterator[Cluster]:
    for sub in ("state", "spool", "run", "log"):
        (folder / sub).mkdir()
    node = socket.gethostname().split(".")[0]
    munge_socket, munged = _munge_folder(folder)
    conf = folder / "slurm.conf"
    conf.write_text(_slurm_conf(folder, node, munge_socket))
    cluster = Cluster({**os.environ, "SLURM_CONF": str(conf)})
    logs = [folder / "munge" / "munged.log", folder / "log" / "slurmctld.log", folder / "log" / "slurmd.log"]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                munged,
                user="munge",
                group="munge",
                extra_groups=[],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_until(munge_socket.exists, 20, "munged's socket appearing", logs)
        for daemon in (["slurmctld", "-D", "-c", "-f", str(conf)], ["slurmd", "-D", "-f", str(conf), "-N", node]):
            procs.append(
                subprocess.Popen(daemon, env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        _wait_until(cluster.idle, 60, "the node becoming idle", logs)
        yield cluster
    finally:
        try:
            if len(procs) == 3:
                cluster.ask("scancel", "--full", "--partition=main")
                _wait_until(lambda: not cluster.busy(), 60, "every job ending", logs)
        finally:
            _stop(procs)
