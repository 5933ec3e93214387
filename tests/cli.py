"""The installed `dlt-ingest` command, run as a user runs it: in a subprocess, with a clean
environment (no developer secrets, vaults or settings), piped or on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: the console script `pip install` made for this checkout (.venv/bin/dlt-ingest)
COMMAND = Path(sys.executable).parent / "dlt-ingest"


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The process environment without our settings and secrets, scratch dirs under
    `tmp_path`, dlt's telemetry off; `extra` added."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "INGEST_", "AZURE_", "APPLICATIONINSIGHTS_"))
        # dlt's own level, set in this process by tests that ran the engine in it
        and k != "RUNTIME__LOG_LEVEL"
    }
    env.update(
        INGEST_WORK_DIR=str(tmp_path / "work"),
        INGEST_SECRETS_FILE=str(tmp_path / "no-secrets.toml"),
        RUNTIME__DLTHUB_TELEMETRY="false",
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
    )
    env.update(extra)
    return env


def dlt_ingest(
    *args: str,
    env: Mapping[str, str],
    cwd: Path | str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`dlt-ingest ARGS...` with stdout and stderr piped."""
    assert COMMAND.exists(), f"{COMMAND} missing: install the project (python3 tasks.py test)"
    return subprocess.run(
        [str(COMMAND), *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@dataclass
class TerminalRun:
    returncode: int
    #: what the command wrote to the terminal (raw: escape sequences and carriage returns kept)
    terminal: str
    #: what it wrote to the stream that stayed a pipe
    piped: str


def dlt_ingest_on_terminal(
    *args: str,
    env: Mapping[str, str],
    stream: str = "stdout",
    cwd: Path | str | None = None,
    timeout: float = 300,
    columns: int = 120,
) -> TerminalRun:
    """`dlt-ingest ARGS...` with `stream` ("stdout" or "stderr") on a pseudo-terminal and the
    other one piped."""
    assert stream in ("stdout", "stderr")
    leader, follower = pty.openpty()
    env = {**env, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    terminal = {"stdout": follower} if stream == "stdout" else {"stderr": follower}
    piped = {"stderr": subprocess.PIPE} if stream == "stdout" else {"stdout": subprocess.PIPE}
    proc = subprocess.Popen(
        [str(COMMAND), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        **terminal,
        **piped,
    )
    os.close(follower)
    chunks: list[bytes] = []
    other = proc.stderr if stream == "stdout" else proc.stdout
    assert other is not None
    other_chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    open_fds = {leader, other.fileno()}
    while open_fds and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_fds), [], [], 0.5)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the terminal side closed (EIO on Linux)
                data = b""
            if not data:
                open_fds.discard(fd)
            elif fd == leader:
                chunks.append(data)
            else:
                other_chunks.append(data)
    if open_fds:
        proc.kill()
    code = proc.wait(timeout=30)
    os.close(leader)
    other.close()
    return TerminalRun(
        code,
        b"".join(chunks).decode("utf-8", "replace"),
        b"".join(other_chunks).decode("utf-8", "replace"),
    )
