"""A real Label Studio server for the slow tests: its own process, SQLite in a temporary
folder, a free port on 127.0.0.1, no network; and a personal access token got the way a
person gets one (log in, then Account & Settings > Personal Access Token).

The server lives in its own venv (its pins conflict with ours): ``make test-all``
installs it into .venv/label-studio. ``LABEL_STUDIO_BIN`` names another ``label-studio``
executable; without one the tests skip, saying so.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMAIL, PASSWORD = "annotator@example.com", "modal-ally-test-1"
#: Seen here: /health answers 40-90 s after start on a busy 2-core machine.
START_TIMEOUT_S = 300


def find_label_studio():
    """The ``label-studio`` executable and where it was looked for."""
    candidates = [os.environ.get("LABEL_STUDIO_BIN"),
                  str(ROOT / ".venv" / "label-studio" / "bin" / "label-studio"),
                  shutil.which("label-studio")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path, candidates
    return None, candidates


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url, process, log):
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited with {process.returncode}:\n"
                               + log.read_text()[-3000:])
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"label-studio did not answer {url}/health within {START_TIMEOUT_S} s:\n"
                       + log.read_text()[-3000:])


def personal_access_token(url, email=EMAIL, password=PASSWORD, *, sign_up=False):
    """Log in through the login form (or sign up, for a second annotator) and create a
    personal access token."""
    import httpx

    form = "/user/signup/" if sign_up else "/user/login/"
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as http:
        page = http.get(form).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        http.post(form, data={"csrfmiddlewaretoken": csrf, "email": email,
                              "password": password},
                  headers={"Referer": f"{url}{form}"}).raise_for_status()
        answer = http.post("/api/token/", json={}, headers={
            "X-CSRFToken": http.cookies["csrftoken"], "Referer": f"{url}/"})
        answer.raise_for_status()
        return answer.json()["token"]


@contextlib.contextmanager
def label_studio_server(executable, folder):
    """Start ``label-studio`` with its data in ``folder``; yield ``(url, token, log)``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = Path(folder) / "data"
    data.mkdir()
    log = Path(folder) / "server.log"
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data),
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [executable, "start", "--no-browser", "--data-dir", str(data),
             "--database", str(data / "label_studio.sqlite3"), "--internal-host", "127.0.0.1",
             "--port", str(port), "--username", EMAIL, "--password", PASSWORD,
             "--log-level", "WARNING"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True)
    try:
        wait_until_up(url, process, log)
        yield url, personal_access_token(url), log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the session this Popen started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
