"""A local Label Studio server: find it, start it on a data folder, wait for it, log in, stop it.

Label Studio pins Django and much else, so it lives in its own virtual environment and runs as a
separate process; we talk to it only over HTTP. Used by `seedloop review serve`, by the test suite
(one server per session) and by anything that needs a real local server with a reviewer account.

Tokens: Label Studio 1.23 turns legacy tokens off, so `personal_access_token` logs in with a session
and asks for a personal access token (a JWT refresh token). The server hands each user one such token
and shows it only once: a second request for the same user is refused (see TokenExists).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from curate.review.errors import AuthFailed, ReviewError
from seedloop.core.errors import ConfigError

ENV_EXECUTABLE = "SEEDLOOP_LABEL_STUDIO"
VENV_EXECUTABLE = Path(".venv-labelstudio") / "bin" / "label-studio"
INSTALL_HELP = ("install it in its own virtual environment (its pinned dependencies clash with ours): "
                "`python3 -m venv .venv-labelstudio && .venv-labelstudio/bin/pip install label-studio==1.23.2` "
                f"(or `make labelstudio`), or point --label-studio / ${ENV_EXECUTABLE} at a label-studio executable")
LOG_NAME = "label-studio.log"


class TokenExists(AuthFailed):
    """The user already holds a personal access token; Label Studio will not show it again."""


def find_label_studio(explicit: str | os.PathLike | None = None, *, cwd: str | os.PathLike | None = None) -> Path:
    """The label-studio executable: `explicit`, else $SEEDLOOP_LABEL_STUDIO, else PATH, else ./.venv-labelstudio."""
    for source, value in (("--label-studio", explicit), (f"${ENV_EXECUTABLE}", os.environ.get(ENV_EXECUTABLE))):
        if value:
            path = Path(value).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise ConfigError(f"{source} points at {path}, which is not an executable file; {INSTALL_HELP}")
            return path
    on_path = shutil.which("label-studio")
    if on_path:
        return Path(on_path)
    local = Path(cwd or Path.cwd()) / VENV_EXECUTABLE
    if local.is_file() and os.access(local, os.X_OK):
        return local
    raise ConfigError(f"Label Studio is not installed (no label-studio on PATH or in {local.parent}); {INSTALL_HELP}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


class LocalLabelStudio:
    """One `label-studio start` process on `data_dir` (its database, media and secret key)."""

    def __init__(self, data_dir: str | os.PathLike, *, port: int = 8080, host: str = "127.0.0.1",
                 executable: str | os.PathLike | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.host, self.port = host, port
        self.executable = find_label_studio(executable)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def is_new(self) -> bool:
        """True until a first start has created the database."""
        return not (self.data_dir / "label_studio.sqlite3").exists()

    def start(self, *, username: str | None = None, password: str | None = None) -> "LocalLabelStudio":
        """Start the server; `username`/`password` create the first (admin) user on a new data folder."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        if port_in_use(self.host, self.port):
            raise ConfigError(f"port {self.port} on {self.host} is already in use (another Label Studio?); "
                              f"pass --port with a free one")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir)}
        if username and password:
            env.update(LABEL_STUDIO_USERNAME=username, LABEL_STUDIO_PASSWORD=password)
        cmd = [str(self.executable), "start", "--no-browser", "--host", self.host, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            # a session of its own, so stop() can end the server and anything it spawned, and nothing else
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.data_dir, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 300.0, on_wait: Callable[[float], None] | None = None) -> None:
        """Block until /health answers 200; raise with the log's tail if the server dies or is too slow."""
        import httpx

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise ReviewError(f"Label Studio exited while starting; the end of {self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if on_wait:
                on_wait(time.monotonic() - start)
            time.sleep(0.5)
        raise ReviewError(f"Label Studio did not answer on {self.url}/health within {timeout:.0f} s; "
                          f"see {self.log_path}")

    def stop(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def login(url: str, email: str, password: str):
    """An httpx.Client holding a logged-in Label Studio session (cookie + CSRF token)."""
    import httpx

    url = url.rstrip("/")
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=60)
    try:
        client.get("/user/login/")
        client.post("/user/login/", data={"email": email, "password": password,
                                          "csrfmiddlewaretoken": client.cookies.get("csrftoken", "")},
                    headers={"Referer": f"{url}/user/login/"})
        if client.get("/api/current-user/whoami").status_code != 200:
            raise AuthFailed(f"Label Studio at {url} did not accept the email and password of {email}")
    except httpx.HTTPError as exc:
        client.close()
        raise ReviewError(f"cannot log in to Label Studio at {url}: {type(exc).__name__}") from None
    except AuthFailed:
        client.close()
        raise
    return client


def personal_access_token(url: str, email: str, password: str) -> str:
    """Log in as `email` and create their personal access token (works once per user)."""
    client = login(url, email, password)
    try:
        answer = client.post("/api/token/", headers={"X-CSRFToken": client.cookies.get("csrftoken", ""),
                                                     "Referer": f"{url.rstrip('/')}/"})
    finally:
        client.close()
    if answer.status_code == 409:
        raise TokenExists(f"{email} already has a personal access token on {url}, and Label Studio shows a token "
                          f"only once: use the one you saved, or revoke it (Account & Settings) and try again")
    if answer.status_code != 201:
        raise AuthFailed(f"Label Studio at {url} refused a personal access token for {email} "
                         f"(HTTP {answer.status_code})")
    return answer.json()["token"]


def sign_up(url: str, email: str, password: str, *, invite_token: str | None = None) -> None:
    """Create an annotator account through the sign-up form, as a person following an invite link does."""
    import httpx

    url = url.rstrip("/")
    query = f"?token={invite_token}" if invite_token else ""
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as client:
        client.get(f"/user/signup/{query}")
        client.post(f"/user/signup/{query}", data={"email": email, "password": password,
                                                   "csrfmiddlewaretoken": client.cookies.get("csrftoken", "")},
                    headers={"Referer": f"{url}/user/signup/"})
        if client.get("/api/current-user/whoami").status_code != 200:
            raise ReviewError(f"Label Studio at {url} did not sign up {email} (taken, or a password it finds "
                              f"too weak: at least 8 characters, not only digits)")
