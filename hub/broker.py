"""The hub's MQTT broker: a real Mosquitto 2.0 process, its password file, ACL and config.

Devices log in with their id as username; the ACL confines each to terminals/<id>/up (write) and
terminals/<id>/down (read), plus read access to hub/status. The hub's own account reads and writes all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
HUB_USER = "hub"
PASSWD_NAME = "passwd"
ACL_NAME = "acl"
CONF_NAME = "mosquitto.conf"
LOG_NAME = "mosquitto.log"
STDERR_NAME = "mosquitto.stderr"
PID_NAME = "mosquitto.pid"
PROBE_USER = "_broker-probe"  # the Broker's own account to check that a reload is in force; never a device

SALT_BYTES = 12  # what mosquitto_passwd 2.0 uses
# Usernames end up in the password file (":" and newlines would break it) and are substituted for %u in
# ACL patterns, where "/", "+" or "#" would widen a device's reach into other devices' topics.
_USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


class BrokerError(RuntimeError):
    """Mosquitto did not start, stopped, or did not take a reload in time; the message has the log tail."""


def check_username(user: str) -> str:
    """Return user if it is safe as a Mosquitto username and ACL %u substitution, else raise ValueError."""
    if not _USERNAME.fullmatch(user):
        raise ValueError(f"bad MQTT username {user!r}: letters, digits, '_', '.', '-' only, 1 to 64 long")
    return user


def hash_password(password: str, salt: bytes | None = None, iterations: int = 101) -> str:
    """Mosquitto 2.0's "$7$" hash: PBKDF2-HMAC-SHA512, `$7$<iterations>$<b64 salt>$<b64 hash>`."""
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True if password matches a Mosquitto "$7$" (or older "$6$") hash; malformed hashes never match."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[0] == "" and parts[1] == "7":
            iterations = int(parts[2])
            salt, expected = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
            if iterations < 1:
                return False
            digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
        elif len(parts) == 4 and parts[0] == "" and parts[1] == "6":
            # Mosquitto 1.x's format, which 2.0 still accepts: one round of SHA-512 over password + salt.
            salt, expected = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
            digest = hashlib.sha512(password.encode("utf-8") + salt).digest()
        else:
            return False
    except ValueError:  # bad base64 or iteration count (binascii.Error is a ValueError)
        return False
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    """A fresh random password for a device or the hub: 32 url-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def password_file_text(accounts: dict[str, str]) -> str:
    """The password file for accounts (username -> "$7$..." hash), one `user:hash` line each."""
    lines = []
    for user, hashed in sorted(accounts.items()):
        check_username(user)
        if not hashed.startswith(("$7$", "$6$")) or any(c in hashed for c in ":\r\n"):
            raise ValueError(f"account {user!r} has no Mosquitto hash (plain passwords are never written)")
        lines.append(f"{user}:{hashed}\n")
    return "".join(lines)


def acl_text(hub_user: str = HUB_USER) -> str:
    """The ACL: the hub account reads and writes everything; every other account only its own subtree."""
    check_username(hub_user)
    return (
        "# Written by hub/broker.py: edits are overwritten when a device is added.\n"
        f"user {hub_user}\n"
        "topic readwrite #\n"
        # "#" does not match topics that start with "$", so the broker's statistics need their own line.
        "topic read $SYS/#\n"
        "\n"
        # Patterns apply to every authenticated user; %u is the username from CONNECT, checked by the
        # password file, unlike the client id (%c), which a device could set to anything.
        "pattern write terminals/%u/up/#\n"
        "pattern read terminals/%u/down/#\n"
        "pattern read hub/status\n"
    )


def _conf_path(path: Path) -> str:
    """An absolute path as a config value; newlines would inject config lines, so they are refused."""
    text = str(path.resolve())
    if "\n" in text or "\r" in text:
        raise ValueError(f"path not usable in mosquitto.conf: {text!r}")
    return text


def config_text(port: int, folder: Path, persistence: bool = True) -> str:
    """mosquitto.conf for one loopback listener on port, with every file kept in folder."""
    lines = [
        "# Written by hub/broker.py: edits are overwritten when the hub rewrites its broker files.",
        f"listener {port} {HOST}",
        "allow_anonymous false",
        f"password_file {_conf_path(folder / PASSWD_NAME)}",
        f"acl_file {_conf_path(folder / ACL_NAME)}",
        f"pid_file {_conf_path(folder / PID_NAME)}",
        f"log_dest file {_conf_path(folder / LOG_NAME)}",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        # A device that was offline for a while can have thousands of acks waiting; the default of 1000
        # queued messages per client would silently drop the rest.
        "max_queued_messages 10000",
        "max_inflight_messages 20",
    ]
    if persistence:
        lines += [
            "persistence true",
            # Mosquitto appends the file name to this as a string, hence the trailing slash.
            f"persistence_location {_conf_path(folder)}/",
            # Bounds what a broker crash loses of queued messages; a clean stop always saves everything.
            "autosave_interval 30",
        ]
    else:
        lines.append("persistence false")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # As root Mosquitto would otherwise drop to "mosquitto"/"nobody", who cannot read these files.
        lines.append("user root")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write text to path via a temp file and rename, so the broker never reads a half-written file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(folder: Path, accounts: dict[str, str], port: int) -> Path:
    """Write passwd, acl and mosquitto.conf into folder (each atomically); return the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    # Password file first: the config names it, and a broker must never find a config without its files.
    _write_atomic(folder / PASSWD_NAME, password_file_text(accounts))
    _write_atomic(folder / ACL_NAME, acl_text(), 0o644)
    conf = folder / CONF_NAME
    _write_atomic(conf, config_text(port, folder), 0o644)
    return conf


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def mosquitto_binary() -> str:
    """The mosquitto executable: $MOSQUITTO if set, else from PATH or the sbin folders Debian uses."""
    explicit = os.environ.get("MOSQUITTO")
    if explicit:
        return explicit
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which("mosquitto", path=search)
    if not found:
        raise BrokerError("mosquitto not found (apt-get install mosquitto, or set MOSQUITTO=/path/to/mosquitto)")
    return found


def _mqtt_string(text: str) -> bytes:
    """An MQTT UTF-8 string: two-byte length, then the bytes."""
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def probe_login(host: str, port: int, user: str, password: str, timeout: float = 1.0) -> int | None:
    """Try an MQTT 3.1.1 login; the CONNACK return code (0 = accepted, 5 = refused), None if no broker answered."""
    # A hand-made CONNECT keeps this module free of an MQTT client library and of its threads.
    payload = _mqtt_string("probe-" + secrets.token_hex(6)) + _mqtt_string(user) + _mqtt_string(password)
    body = _mqtt_string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 10) + payload  # user+password+clean
    length, remaining = b"", len(body)
    while True:
        byte, remaining = remaining % 128, remaining // 128
        length += bytes([byte | (0x80 if remaining else 0)])
        if not remaining:
            break
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"\x10" + length + body)
            answer = b""
            while len(answer) < 4:
                chunk = s.recv(4 - len(answer))
                if not chunk:
                    return None
                answer += chunk
            if answer[0] != 0x20:
                return None
            if answer[3] == 0:
                s.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean goodbye, not a lost client
            return answer[3]
    except OSError:
        return None


class Broker:
    """One mosquitto process with its files in folder; start/stop/reload it, or use it as a context manager."""

    host = HOST

    def __init__(self, folder: Path, port: int | None = None) -> None:
        """Nothing starts yet; a free loopback port is picked now when port is None (kept across restarts)."""
        self.folder = Path(folder).resolve()
        self.port: int = port if port is not None else free_port()
        self.accounts: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._probe_password = ""
        # The hub may add devices from several request threads; a reload waits for its own probe password.
        self._lock = threading.RLock()

    # -- accounts ----------------------------------------------------------------------------------

    def set_account(self, user: str, hashed: str) -> None:
        """Add or replace an account (username -> "$7$..." hash); call reload() to put it in force."""
        check_username(user)
        if user == PROBE_USER:
            raise ValueError(f"{PROBE_USER!r} is reserved for the broker's own checks")
        if not hashed.startswith(("$7$", "$6$")):
            raise ValueError("set_account takes a hash from hash_password(), not a plain password")
        self.accounts[user] = hashed

    def remove_account(self, user: str) -> None:
        """Drop an account; after reload() it cannot log in again (a live connection stays until it drops)."""
        self.accounts.pop(user, None)

    # -- process -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the mosquitto process this object started is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The mosquitto process id while running, else None."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def log_path(self) -> Path:
        """Mosquitto's own log file."""
        return self.folder / LOG_NAME

    def _write(self) -> Path:
        """Write the broker files with a fresh probe password, so a reload can be seen to take effect."""
        self._probe_password = new_password()
        accounts = dict(self.accounts)
        accounts[PROBE_USER] = hash_password(self._probe_password)
        return write_files(self.folder, accounts, self.port)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of mosquitto's stderr and log file, for error messages."""
        tail: list[str] = []
        for name in (STDERR_NAME, LOG_NAME):
            path = self.folder / name
            if path.exists():
                tail += path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return "\n".join(tail) or "(mosquitto wrote nothing)"

    def _wait_probe(self, timeout: float, what: str) -> None:
        """Poll until the current probe password logs in; raise BrokerError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                raise BrokerError(f"mosquitto exited (code {code}) during {what} on port {self.port}:\n{self.log_tail()}")
            if probe_login(self.host, self.port, PROBE_USER, self._probe_password) == 0:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"mosquitto {what} on port {self.port} not done after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.02)

    def start(self, timeout: float = 10.0) -> None:
        """Write the files, launch mosquitto, and return once it accepts logins on the port."""
        with self._lock:
            if self.running:
                return
            conf = self._write()
            # Anything mosquitto says before it opens its log file (config errors) goes to stderr: keep it.
            with open(self.folder / STDERR_NAME, "wb") as err:
                self._proc = subprocess.Popen(
                    [mosquitto_binary(), "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=err, stderr=err
                )
            try:
                # A login, not just an open port: only our broker knows the probe password.
                self._wait_probe(timeout, "start")
            except BaseException:
                self._terminate(signal.SIGKILL, 5.0)
                raise

    def reload(self, timeout: float = 5.0) -> None:
        """Rewrite the files and SIGHUP mosquitto; return once the new password file is in force."""
        with self._lock:
            if not self.running:
                raise BrokerError("reload: mosquitto is not running")
            self._write()
            assert self._proc is not None
            self._proc.send_signal(signal.SIGHUP)
            # The probe password just changed, so it logging in proves mosquitto re-read the password file.
            self._wait_probe(timeout, "reload")

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        """Send sig, wait up to timeout, then SIGKILL; forget the process."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file on the way out), SIGKILL if it hangs."""
        with self._lock:
            self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is saved since the last autosave (for fault tests)."""
        with self._lock:
            self._terminate(signal.SIGKILL, 5.0)

    def restart(self) -> None:
        """Stop and start on the same port; persisted sessions and retained messages survive."""
        with self._lock:
            self.stop()
            self.start()

    def __enter__(self) -> Broker:
        """Start the broker for a with block."""
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """Stop it, whatever happened in the block."""
        self.stop()
