"""A private Dovecot IMAP server for tests: its own config, port, users and mail folder in a temp dir.

Dovecot refuses to run its login processes as root and to deliver mail as uid 0,
so logins run as ``dovenull`` and every mail user maps to uid/gid 65534 (nobody).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from ops.intake_cli import DOORBELL_SCRIPT  # the script `helpdesk intake imap-doorbell-script` prints
from tests.servers.base import free_port

LUA_SOCKET = Path("/usr/share/lua/5.4/socket.lua")  # Debian's lua-socket, for the Lua 5.4 Dovecot 2.3 embeds

CONFIG = """
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = {ssl}
{ssl_files}
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
default_login_user = dovenull
default_internal_user = dovenull
default_internal_group = nogroup
first_valid_uid = 65534
last_valid_uid = 65534
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={root}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {ssl_port}
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
imap_idle_notify_interval = 2 mins
verbose_proctitle = yes
mail_max_userip_connections = 100
"""


class Dovecot:
    """Start, stop and restart one Dovecot; users are created with ``add_user``."""

    def __init__(self, root: Path, *, with_ssl: bool = True, doorbell: tuple[str, int] | None = None) -> None:
        self.root = root
        self.doorbell = doorbell  # (host, port): deliveries and APPENDs ring it through ops/dovecot/helpdesk-doorbell.lua
        self.port = free_port()
        self.ssl_port = free_port() if with_ssl else 0
        self.with_ssl = with_ssl
        self.process: subprocess.Popen | None = None
        self.binary = shutil.which("dovecot") or "/usr/sbin/dovecot"

    @property
    def available(self) -> bool:
        return Path(self.binary).exists()

    def configure(self) -> None:
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "home", 0o777)
        ssl_files = ""
        if self.with_ssl:
            self._make_certificate()
            ssl_files = f"ssl_cert = <{self.root}/cert.pem\nssl_key = <{self.root}/key.pem"
        (self.root / "passwd").touch()
        self._configure_oauth2()
        config = CONFIG.format(root=self.root, port=self.port, ssl_port=self.ssl_port, ssl="yes" if self.with_ssl else "no", ssl_files=ssl_files)
        if self.doorbell is not None:
            config += self._doorbell_config()
        (self.root / "dovecot.conf").write_text(config)

    def _doorbell_config(self) -> str:
        """The push-notification plugin running the shipped doorbell script (copied where Dovecot's mail processes,
        which run as nobody, can read it)."""
        script = self.root / "helpdesk-doorbell.lua"
        shutil.copyfile(DOORBELL_SCRIPT, script)
        script.chmod(0o644)
        host, port = self.doorbell
        return (
            "mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua\n"
            f"plugin {{\n  push_notification_driver = lua:file={script}\n  helpdesk_doorbell = {host}:{port}\n}}\n"
        )

    def _configure_oauth2(self) -> None:
        """XOAUTH2 / OAUTHBEARER logins with JWTs that Dovecot validates locally (HS256, a key of this server's own)."""
        self.oauth2_key = os.urandom(32)
        keys = self.root / "keys" / "default" / "HS256"
        keys.mkdir(parents=True, exist_ok=True)
        (keys / "default").write_text(base64.b64encode(self.oauth2_key).decode())
        for path in (self.root / "keys", self.root / "keys" / "default", keys):
            path.chmod(0o755)
        (keys / "default").chmod(0o644)
        (self.root / "oauth2.conf.ext").write_text(
            f"introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix={self.root}/keys/\nusername_attribute = email\n"
        )

    def oauth2_token(self, user: str, lifetime: int = 600) -> str:
        """A signed access token for ``user``, as an identity provider (Google, Microsoft) would issue."""

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = b64(json.dumps({"sub": user, "email": user, "iat": now, "exp": now + lifetime}).encode())
        signature = b64(hmac.new(self.oauth2_key, f"{header}.{claims}".encode(), hashlib.sha256).digest())
        return f"{header}.{claims}.{signature}"

    def _make_certificate(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.root / "key.pem"), "-out", str(self.root / "cert.pem")],
            check=True, capture_output=True,
        )

    @property
    def ca_file(self) -> Path:
        return self.root / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def add_user(self, name: str, password: str) -> None:
        with open(self.root / "passwd", "a") as handle:
            handle.write(f"{name}:{{PLAIN}}{password}\n")
        home = self.root / "home" / name
        home.mkdir(parents=True, exist_ok=True)
        shutil.chown(home, 65534, 65534)

    def start(self) -> None:
        if not (self.root / "dovecot.conf").exists():
            self.configure()
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() takes the client sessions down too
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()} {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    if conn.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start: {self.log()}")

    def stop(self) -> None:
        """Stop the server and every session it serves, as a crash or a host restart would."""
        if self.process is not None:
            group = self.process.pid
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            try:
                os.killpg(group, signal.SIGKILL)  # imap sessions outlive the master otherwise
            except ProcessLookupError:
                pass
        self.process = None
        # login and imap children may outlive the master briefly; wait until the port is free
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                time.sleep(0.1)
            except OSError:
                return

    def sessions(self, user: str) -> dict[int, str]:
        """The imap processes serving ``user``: pid → what the session is doing ("" between commands, "IDLE"…),
        read from their titles (verbose_proctitle: "dovecot/imap [user ip state]")."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                continue
            if title.startswith("dovecot/imap [") and title.endswith("]"):
                who, _, rest = title.removeprefix("dovecot/imap [").removesuffix("]").partition(" ")
                if who == user:
                    found[int(entry.name)] = rest.partition(" ")[2]
        return found

    def in_idle(self, user: str) -> bool:
        """Whether a session of ``user`` is in IDLE now."""
        return "IDLE" in self.sessions(user).values()

    def kill_sessions(self, user: str) -> int:
        """SIGKILL the imap processes serving ``user`` (a crash, an admin's kick): their clients see the connection end
        without a BYE. How many there were."""
        killed = 0
        for pid in self.sessions(user):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""
