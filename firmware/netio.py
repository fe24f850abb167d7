"""A TCP connection for MicroPython (ESP32, unix port) and CPython alike.

MicroPython-compatible: imports only socket, select and errno; annotations only, no
typing at run time. The socket is non-blocking after the connect; every wait is a
select.poll() with a timeout in milliseconds (both implementations take ms there).

Errors are OSError with an errno: ETIMEDOUT (connect or send took too long),
ECONNREFUSED, ECONNRESET (the peer closed: a read that would return end-of-stream
raises instead, so b'' from read() always means "nothing yet"), EPIPE, EBADF (used
after close()).

Network is the seam the board and the simulator replace (the simulator wraps it to
inject faults): the firmware asks it for connections and uses nothing but write(),
read() and close() on what it returns.
"""

import errno
import select
import socket

_EAGAIN = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))
_EINPROGRESS = (errno.EINPROGRESS, getattr(errno, "EALREADY", errno.EINPROGRESS), errno.EAGAIN)
_BAD = select.POLLERR | select.POLLHUP


def _errno(exc) -> int:
    """The errno of an OSError (MicroPython puts it in args[0])."""
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    return code or 0


def _poll_once(poller, timeout_ms: int) -> int:
    """The event mask of the one registered socket after waiting up to timeout_ms; 0 if none."""
    mask = 0
    for entry in poller.poll(max(0, timeout_ms)):
        mask |= entry[1]
    return mask


class TcpConnection:
    """One TCP stream; write() sends everything, read() waits at most timeout_ms.

    write_timeout_ms bounds how long write() waits for room in the send buffer
    (a peer that stops reading); it defaults to the connect timeout.
    """

    def __init__(self, sock, write_timeout_ms: int = 5000) -> None:
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self.write_timeout_ms = write_timeout_ms

    @classmethod
    def open(cls, host: str, port: int, timeout_ms: int) -> "TcpConnection":
        """Connect to host:port, giving up with OSError(ETIMEDOUT) after timeout_ms.

        The name lookup (getaddrinfo) blocks on its own terms: give an address
        literal where that matters.
        """
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        sock = socket.socket(ai[0], socket.SOCK_STREAM)
        try:
            _nodelay(sock)
            sock.setblocking(False)
            _connect(sock, ai[-1], timeout_ms)
        except BaseException:
            sock.close()
            raise
        return cls(sock, timeout_ms)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def _socket(self):
        if self._sock is None:
            raise OSError(errno.EBADF, "connection closed")
        return self._sock

    def write(self, data) -> None:
        """Send all of data (bytes, bytearray or memoryview); OSError when the peer is gone."""
        sock = self._socket()
        view = memoryview(data)
        sent, total = 0, len(view)
        while sent < total:
            try:
                n = sock.send(view[sent:])
            except OSError as e:
                if _errno(e) not in _EAGAIN:
                    raise
                n = 0
            if n:
                sent += n
                continue
            # The send buffer is full: wait for room (the peer has to read).
            self._poll.modify(sock, select.POLLOUT)
            try:
                mask = _poll_once(self._poll, self.write_timeout_ms)
            finally:
                self._poll.modify(sock, select.POLLIN)
            if not mask:
                raise OSError(errno.ETIMEDOUT, "send timed out")
            # POLLERR/POLLHUP: the next send() raises the real error.

    def read(self, n: int, timeout_ms: int) -> bytes:
        """Up to n bytes; b'' when none arrived within timeout_ms; OSError(ECONNRESET) when the peer closed."""
        sock = self._socket()
        if not _poll_once(self._poll, timeout_ms):
            return b""
        try:
            data = sock.recv(n)
        except OSError as e:
            if _errno(e) in _EAGAIN:
                return b""
            raise
        if not data:
            raise OSError(errno.ECONNRESET, "connection closed by peer")
        return data

    def close(self) -> None:
        """Close the socket; harmless when already closed."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                self._poll.unregister(sock)
            except (OSError, KeyError, ValueError):
                pass
            sock.close()


def _nodelay(sock) -> None:
    """TCP_NODELAY where the port has it (CPython): small MQTT packets leave at once."""
    level = getattr(socket, "IPPROTO_TCP", None)
    opt = getattr(socket, "TCP_NODELAY", None)
    if level is not None and opt is not None:
        try:
            sock.setsockopt(level, opt, 1)
        except OSError:
            pass


def _connect(sock, addr, timeout_ms: int) -> None:
    """A non-blocking connect, waited for with poll (no getsockopt on MicroPython)."""
    try:
        sock.connect(addr)
        return
    except OSError as e:
        if _errno(e) not in _EINPROGRESS:
            raise
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    mask = _poll_once(poller, timeout_ms)
    poller.unregister(sock)
    if not mask:
        raise OSError(errno.ETIMEDOUT, "connect timed out")
    if mask & _BAD:
        # A second connect() reports why the first one failed.
        try:
            sock.connect(addr)
        except OSError as e:
            if _errno(e) not in _EINPROGRESS:
                raise
        raise OSError(errno.ECONNREFUSED, "connect failed")


def connect(host: str, port: int, timeout_ms: int) -> TcpConnection:
    """TcpConnection.open(host, port, timeout_ms)."""
    return TcpConnection.open(host, port, timeout_ms)


class Network:
    """Makes TCP connections; the simulator replaces or wraps it to inject faults.

    What connect() returns needs only write(data), read(n, timeout_ms) and close(),
    with TcpConnection's meaning.
    """

    def connect(self, host: str, port: int, timeout_ms: int):
        """An open connection to host:port; OSError when it cannot be made in timeout_ms."""
        return TcpConnection.open(host, port, timeout_ms)
