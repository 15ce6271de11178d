"""Let ``sam local`` containers reach the local stack, which listens on 127.0.0.1 only.

SAM CLI runs each function in a container on Docker's default bridge network (``--docker-network host``
does not change that: SAM skips connecting a container to the ``host`` network), where 127.0.0.1 is the
container itself. On a Linux Docker engine the host is reachable from there at the bridge's gateway
address (``docker0``, usually 172.17.0.1); :class:`TcpRelay` listens on that address, on the same port
numbers, and forwards to 127.0.0.1. Nothing is opened to other machines: the bridge address exists only on
this host. Docker Desktop (macOS, Windows) forwards ``host.docker.internal`` to the host's loopback itself,
so no relay is needed there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import socket
import struct
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Self

DOCKER_BRIDGE = "docker0"
DESKTOP_HOST = "host.docker.internal"
_SIOCGIFADDR = 0x8915


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of network interface ``name`` (Linux), or None if it has none or does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def container_host() -> tuple[str | None, bool]:
    """``(address, needs_relay)``: how a ``sam local`` container reaches this host.

    ``KEAPLINK_DOCKER_HOST`` wins (no relay: whatever it names must reach 127.0.0.1 by itself). On Linux
    it is the ``docker0`` bridge's address, with a relay, or None while Docker's bridge does not exist
    (Docker not started yet). Elsewhere it is Docker Desktop's ``host.docker.internal``.
    """
    explicit = os.environ.get("KEAPLINK_DOCKER_HOST")
    if explicit:
        return explicit, False
    if sys.platform.startswith("linux"):
        return interface_ipv4(DOCKER_BRIDGE), True
    return DESKTOP_HOST, False


class TcpRelay:
    """Forward TCP connections from ``listen_host:port`` to ``target_host:port`` for each of ``ports``.

    One thread serves every listener and connection (a selector loop); :meth:`stop` closes them all and
    joins the thread. Use as a context manager.
    """

    def __init__(self, listen_host: str, ports: Iterable[int], target_host: str = "127.0.0.1") -> None:
        self.listen_host = listen_host
        self.ports = sorted(set(ports))
        self.target_host = target_host
        self._selector = selectors.DefaultSelector()
        self._sockets: set[socket.socket] = set()
        self._peer: dict[socket.socket, socket.socket] = {}
        self._drained: set[socket.socket] = set()  # sockets that sent EOF
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        try:
            for port in self.ports:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._sockets.add(listener)
                listener.bind((self.listen_host, port))
                listener.listen(64)
                listener.setblocking(False)
                self._selector.register(listener, selectors.EVENT_READ, ("accept", port))
        except OSError:
            self._close_all()
            raise
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", 0))
        self._thread = threading.Thread(target=self._loop, name="keaplink-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._close_all()

    def _close_all(self) -> None:
        for sock in list(self._sockets):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        self._sockets.clear()
        self._peer.clear()
        self._drained.clear()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self._wake_r)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=1.0):
                kind, port = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if kind == "accept":
                    self._accept(sock, port)
                elif kind == "pipe":
                    self._pipe(sock)

    def _accept(self, listener: socket.socket, port: int) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection((self.target_host, port), timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            self._sockets.add(sock)
            self._selector.register(sock, selectors.EVENT_READ, ("pipe", port))
        self._peer[client], self._peer[upstream] = upstream, client

    def _pipe(self, sock: socket.socket) -> None:
        peer = self._peer.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:  # reset: both directions are gone
            self._close_pair(sock, peer)
            return
        if not data:  # this side is done sending: pass the half-close on, close once both sides are done
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            self._drained.add(sock)
            if peer in self._drained:
                self._close_pair(sock, peer)
            else:
                with contextlib.suppress(OSError):
                    peer.shutdown(socket.SHUT_WR)
            return
        try:
            peer.setblocking(True)  # the peer is local: a short blocking write keeps ordering simple
            peer.settimeout(10)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._close_pair(sock, peer)

    def _close_pair(self, a: socket.socket, b: socket.socket) -> None:
        for sock in (a, b):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            self._peer.pop(sock, None)
            self._drained.discard(sock)
            self._sockets.discard(sock)
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
