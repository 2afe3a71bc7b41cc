"""`make lab`: JupyterLab on notebooks/, on 127.0.0.1 only, announced in one line with its address.

JupyterLab's own start-up writes about a hundred log lines with the address somewhere among them;
here it logs warnings only, gets a token made here, and the one line a teacher needs is printed once
the server answers. Ctrl-C stops it.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from harness.project import PROJECT_ROOT

START_TIMEOUT_S = 90.0


def _free_port(preferred: int = 8888) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def main() -> int:
    port, token = _free_port(), secrets.token_hex(16)
    argv = [str(Path(sys.executable).parent / "jupyter"), "lab", f"--notebook-dir={PROJECT_ROOT / 'notebooks'}",
            "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0", "--no-browser",
            f"--IdentityProvider.token={token}", "--ServerApp.log_level=WARN"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    proc = subprocess.Popen(argv, cwd=PROJECT_ROOT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                print(f"JupyterLab exited at start (code {proc.returncode}); see its messages above", file=sys.stderr)
                return 1
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print(f"JupyterLab did not answer within {START_TIMEOUT_S:g} s", file=sys.stderr)
                    return 1
                time.sleep(0.3)
        print(f"JupyterLab on the lessons: {url}  (only this machine can reach it; Ctrl-C stops it)", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
