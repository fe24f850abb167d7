"""A private pcscd with vsmartcard's vpcd virtual reader, for tests and `sim desk-reader`.

PC/SC on Linux is one daemon, pcscd, that clients reach through a Unix socket. The
client library (libpcsclite, under pyscard) takes the socket's path from the
environment variable PCSCLITE_CSOCK_NAME, but pcscd itself does not: up to pcsc-lite
2.x it always binds /run/pcscd/pcscd.comm and writes /run/pcscd/pcscd.pid. So a
second pcscd is isolated here in two ways:

* systemd socket activation: we bind and listen on a socket of our own and hand it
  to pcscd as fd 3 with LISTEN_FDS=1 and LISTEN_PID (sd_listen_fds(3)); pcscd then
  never looks at /run/pcscd/pcscd.comm, neither to refuse to start because another
  pcscd owns it nor to delete it on exit;
* a private mount namespace (``unshare --mount``, when the machine allows it: root,
  or user namespaces): our own folder is mounted on /run/pcscd, so the pid file stays
  ours too, and an empty tmpfs hides the USB driver bundles, so this pcscd never
  claims a real USB reader that the system's pcscd serves. Without a namespace,
  pcscd still writes (and on exit removes) /run/pcscd/pcscd.pid: `isolation` says
  which mode is in use.

The reader is vpcd in its default "server" mode: it listens on a TCP port (and the
next one, for its second slot) for a virtual card to connect (simulator/desk_card.py);
pcscd lists it as "<friendly name> 00 00" (and "... 00 01"). vpcd binds these ports
on every interface; the ports are picked free just before pcscd starts.

libpcsclite reads PCSCLITE_CSOCK_NAME once per process (the first PC/SC call caches
it), so every private pcscd of one process uses the same socket path,
``process_socket_path()``: one at a time per process, any number of processes.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "install the Debian packages pcscd vsmartcard-vpcd libpcsclite-dev swig (`make setup` does), "
    "then `pip install pyscard` (also done by `make setup`)"
)
DEFAULT_FRIENDLY_NAME = "Virtual PCD"
START_TIMEOUT = 10.0
_DRIVER_GLOBS = (
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so",
    "/usr/lib/pcsc/drivers/serial/libifdvpcd.so.*",
    "/usr/lib/*/pcsc/drivers/serial/libifdvpcd.so*",
    "/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so*",
)
USB_DROPDIR = "/usr/lib/pcsc/drivers"

# Runs as pcscd's parent shell (inside the namespace when there is one), then execs pcscd so that
# LISTEN_PID=$$ is pcscd's pid. The socket to serve arrives as stdin and becomes fd 3 (dash takes one-digit fds only).
_LAUNCH = r"""
set -e
if [ -n "$PRIVATE_RUN" ]; then
  mkdir -p /run/pcscd
  mount --bind "$PRIVATE_RUN" /run/pcscd
  if [ -n "$HIDE_DROPDIR" ]; then
    mount --bind "$DRIVER_DIR" "$PRIVATE_DRIVER_DIR"
    mount -t tmpfs -o size=64k,mode=0755 membercard-no-usb-drivers "$HIDE_DROPDIR"
  fi
fi
unset LISTEN_FDNAMES NOTIFY_SOCKET
export LISTEN_FDS=1 LISTEN_PID=$$
exec "$PCSCD" --foreground --info --config "$CONFIG_DIR" 3<&0 </dev/null
"""


class PcscUnavailable(RuntimeError):
    """pcscd, the vpcd driver or pyscard is missing, or the private pcscd did not come up."""


def find_pcscd() -> str | None:
    """The pcscd binary, or None."""
    found = shutil.which("pcscd")
    if found:
        return found
    return "/usr/sbin/pcscd" if os.access("/usr/sbin/pcscd", os.X_OK) else None


def find_vpcd_driver() -> str | None:
    """vsmartcard's vpcd IFD handler (libifdvpcd.so), or None."""
    for pattern in _DRIVER_GLOBS:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def missing(need_pyscard: bool = True) -> list[str]:
    """What is not installed, in words; empty when everything is there."""
    gaps = []
    if find_pcscd() is None:
        gaps.append("pcscd (Debian package pcscd)")
    if find_vpcd_driver() is None:
        gaps.append("the vpcd reader driver libifdvpcd.so (Debian package vsmartcard-vpcd)")
    if need_pyscard:
        try:
            import smartcard.scard  # noqa: F401
        except ImportError:
            gaps.append("pyscard (pip install pyscard; building it needs swig, gcc and libpcsclite-dev)")
    return gaps


def require(need_pyscard: bool = True) -> None:
    """Raise PcscUnavailable naming what to install when something is missing."""
    gaps = missing(need_pyscard)
    if gaps:
        raise PcscUnavailable(f"missing: {'; '.join(gaps)}. To fix: {INSTALL_HINT}")


def process_socket_path() -> str:
    """The pcscd socket path every private pcscd of this process binds (see the module doc)."""
    return os.path.join(tempfile.gettempdir(), f"membercard-pcsc-socket-{os.getpid()}", "pcscd.comm")


@functools.cache
def namespace_prefix() -> tuple[str, ...] | None:
    """The unshare command line giving pcscd a private mount namespace, or None when not allowed here."""
    unshare = shutil.which("unshare")
    if unshare is None or shutil.which("mount") is None:
        return None
    base: tuple[str, ...] = (unshare, "--mount", "--propagation", "private")
    candidates = [base] if os.geteuid() == 0 else []
    candidates.append((unshare, "--user", "--map-root-user", "--mount", "--propagation", "private"))
    for prefix in candidates:
        try:
            probe = subprocess.run(
                [*prefix, "sh", "-c", "mount -t tmpfs membercard-probe /tmp"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return None


def _port_pair() -> int:
    """A port P such that P and P+1 are free on every interface (vpcd's two slots)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind(("", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind(("", port + 1))
                except OSError:
                    continue
                return port
    raise PcscUnavailable("found no two consecutive free TCP ports for vpcd")


def listening_sockets() -> dict[int, set[int]]:
    """TCP port -> inodes of the sockets listening on it (from /proc/net/tcp and tcp6)."""
    found: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A":
                        found.setdefault(int(fields[1].rsplit(":", 1)[1], 16), set()).add(int(fields[9]))
        except OSError:
            continue
    return found


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine."""
    return set(listening_sockets())


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process pid holds open."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


class PrivatePcscd:
    """pcscd with one vpcd reader, on a socket and ports of its own; stop() leaves nothing behind.

    After start(): ``socket_path`` (give clients PCSCLITE_CSOCK_NAME=socket_path, or call
    use_in_this_process()), ``vpcd_port`` (where a virtual card connects), ``reader_name``
    (the PC/SC name of the slot that port feeds), ``isolation`` ("mount-namespace" or
    "socket-only"), ``log_path`` (pcscd's log).
    """

    def __init__(self, friendly_name: str = DEFAULT_FRIENDLY_NAME, socket_path: str | None = None) -> None:
        if not friendly_name or '"' in friendly_name or "\n" in friendly_name:
            raise ValueError("friendly_name must be a non-empty line without quotes")
        self.friendly_name = friendly_name
        self.socket_path = socket_path or process_socket_path()
        self._own_socket_dir = socket_path is None
        self.vpcd_port = 0
        self.isolation = ""
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def reader_name(self) -> str:
        """The PC/SC reader a card connected to vpcd_port appears in (vpcd slot 0)."""
        return f"{self.friendly_name} 00 00"

    @property
    def reader_names(self) -> list[str]:
        """Both readers vpcd registers (slot 1 listens on vpcd_port + 1 and stays empty here)."""
        return [f"{self.friendly_name} 00 00", f"{self.friendly_name} 00 01"]

    @property
    def log_path(self) -> Path | None:
        return self.folder / "pcscd.log" if self.folder else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def env(self) -> dict[str, str]:
        """What a PC/SC client process needs in its environment to reach this pcscd."""
        return {"PCSCLITE_CSOCK_NAME": self.socket_path}

    def use_in_this_process(self) -> None:
        """Point this process's libpcsclite at this pcscd (before its first PC/SC call; see module doc)."""
        os.environ["PCSCLITE_CSOCK_NAME"] = self.socket_path

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT, attempts: int = 3) -> PrivatePcscd:
        """Start pcscd and wait until vpcd listens; PcscUnavailable (with what to do) otherwise."""
        if self.running:
            return self
        require(need_pyscard=False)
        last = ""
        for _ in range(attempts):
            try:
                self._launch()
                if self._wait_listening(timeout):
                    return self
                last = self.log_tail()
            except BaseException:
                self.stop()
                raise
            self.stop()
        raise PcscUnavailable(f"pcscd with the vpcd reader did not come up; its log ends with:\n{last}")

    def _launch(self) -> None:
        pcscd, driver = find_pcscd(), find_vpcd_driver()
        assert pcscd is not None and driver is not None  # require() ran
        self.folder = Path(tempfile.mkdtemp(prefix="membercard-pcscd-"))
        self.vpcd_port = _port_pair()
        prefix = namespace_prefix()
        self.isolation = "mount-namespace" if prefix else "socket-only"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LISTEN_", "PCSCLITE_"))}
        env.update(PCSCD=pcscd, CONFIG_DIR=str(self.folder / "reader.conf.d"), PRIVATE_RUN="")
        libpath = driver
        if prefix:
            (self.folder / "run").mkdir()
            env["PRIVATE_RUN"] = str(self.folder / "run")
            if Path(driver).resolve().is_relative_to(USB_DROPDIR):
                # Bind the vpcd driver's folder into ours, then hide the USB driver bundles (see module doc).
                (self.folder / "driver").mkdir()
                env.update(
                    HIDE_DROPDIR=USB_DROPDIR,
                    DRIVER_DIR=str(Path(driver).resolve().parent),
                    PRIVATE_DRIVER_DIR=str(self.folder / "driver"),
                )
                libpath = str(self.folder / "driver" / Path(driver).resolve().name)
        conf = self.folder / "reader.conf.d"
        conf.mkdir()
        (conf / "vpcd").write_text(
            f'FRIENDLYNAME "{self.friendly_name}"\n'
            f"DEVICENAME   /dev/null:0x{self.vpcd_port:04X}\n"
            f"LIBPATH      {libpath}\n"
            f"CHANNELID    0x{self.vpcd_port:04X}\n"
        )
        listener = self._bind_socket()
        try:
            with open(self.folder / "pcscd.log", "wb") as log:
                self.process = subprocess.Popen(
                    [*(prefix or ()), "sh", "-c", _LAUNCH],
                    env=env,
                    stdin=listener.fileno(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop pcscd
                )
        finally:
            listener.close()

    def _bind_socket(self) -> socket.socket:
        directory = os.path.dirname(self.socket_path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.socket_path)
            os.chmod(self.socket_path, 0o666)
            listener.listen(64)
        except BaseException:
            listener.close()
            raise
        return listener

    def _wait_listening(self, timeout: float) -> bool:
        """Wait until pcscd itself (not whoever else might have taken the port) listens on both vpcd ports."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            listening = listening_sockets()
            ours = _socket_inodes(self.process.pid)
            if all(listening.get(port, set()) & ours for port in (self.vpcd_port, self.vpcd_port + 1)):
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop pcscd (SIGTERM, then SIGKILL), remove the socket and the folder."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self._own_socket_dir:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.socket_path))
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PrivatePcscd:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
