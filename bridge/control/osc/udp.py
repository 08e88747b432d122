"""The OSC server's UDP side: who may listen where, who may send, and a socket server that asks first.

:func:`check_exposure` refuses to listen where other machines can reach the
server unless that is asked for *and* the allowed senders are named;
:class:`SenderAllowlist` answers, per sender address, whether its datagrams are
served; :class:`GatedServer` is python-osc's blocking (in-order) UDP server
with a large receive buffer, a swappable dispatcher and a gate that sees every
datagram before python-osc parses it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from typing import Any, Callable

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

__all__ = ["Address", "GatedServer", "SenderAllowlist", "check_exposure", "is_loopback_host", "RCVBUF_BYTES"]

log = logging.getLogger(__name__)
RCVBUF_BYTES = 4 * 1024 * 1024  # measured: the default buffer lost 15-19 % of a 47k msg/s flood, 4 MB none

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an address, or a name such as 'localhost') resolves only to loopback addresses."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class SenderAllowlist:
    """Which senders are served: the listed addresses/networks, or (none listed) loopback only."""

    def __init__(self, senders: Iterable[str] = ()) -> None:
        nets = []
        for text in senders:
            try:
                nets.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(f"allowed OSC sender {text!r} is not an IP address or network; "
                                 "write e.g. 192.168.1.20 or 192.168.1.0/24") from None
        self.networks: tuple[Network, ...] = tuple(nets)
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def allows(self, ip: str) -> bool:
        ok = self._known.get(ip)
        if ok is None:
            addr = ipaddress.ip_address(ip)
            ok = any(addr in net for net in self.networks) if self.networks else addr.is_loopback
            if len(self._known) < 4096:  # bounded: spoofed sources must not grow it forever
                self._known[ip] = ok
        return ok


def check_exposure(host: str, allow_remote: bool, allowed: SenderAllowlist) -> None:
    """Raise ValueError (saying what to pass) when listening on ``host`` would expose OSC unasked."""
    if is_loopback_host(host):
        return
    if not allow_remote:
        raise ValueError(f"OSC would listen on {host!r}, which other machines can reach; listen on "
                         "127.0.0.1, or allow it explicitly (allow_remote / --osc-allow-remote) "
                         "together with the senders to accept (--osc-allow ADDRESS[/NET])")
    if not allowed:
        raise ValueError(f"OSC on {host!r} needs a list of allowed sender addresses "
                         "(--osc-allow 192.168.1.20 or --osc-allow 192.168.1.0/24)")


class GatedServer(BlockingOSCUDPServer):
    """A blocking (in-order) OSC server with a large receive buffer and a swappable dispatcher.

    ``gate(data, sender)`` decides, before python-osc sees a datagram, whether it is handled.
    """

    # The whole datagram, not socketserver's 8 KB: a longer one would arrive cut
    # off and could parse as something else; osc_guard refuses it by size instead.
    max_packet_size = 65536

    def __init__(self, address: Address, dispatcher: Dispatcher, *, rcvbuf: int,
                 gate: Callable[[bytes, Address], bool], on_error: Callable[[Address], None]) -> None:
        self._rcvbuf, self._gate, self._on_error = rcvbuf, gate, on_error
        self.current = dispatcher
        super().__init__(address, dispatcher)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        # NB: socketserver calls this outside its try/except: an exception here
        # would end serve_forever, so the gate must (and does) catch everything.
        return self._gate(request[0], client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self._on_error(client_address)  # instead of a traceback on stderr per packet

    @property
    def dispatcher(self) -> Dispatcher:
        return self.current  # NB: replaced by a single reference store on preset change

    def server_bind(self) -> None:
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:  # SO_RCVBUFFORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN)
                self.socket.setsockopt(socket.SOL_SOCKET, option, self._rcvbuf)
                break
            except OSError:
                continue
        super().server_bind()
        got = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports double
        if got < self._rcvbuf:
            log.warning("OSC receive buffer is %d bytes, not %d: bursts may be lost; raise it with "
                        "`sysctl -w net.core.rmem_max=%d`", got, self._rcvbuf, self._rcvbuf)
