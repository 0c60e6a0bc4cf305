"""A delay line for kernels without netem: every packet a rank receives waits ``delay`` first.

``resources.latency`` is netem's job (:mod:`trainbed.orchestrator.local.network`), but some
kernels are built without ``sch_netem``. There the executor puts one iptables rule in each rank's
namespace, ``-t mangle -A PREROUTING -i eth0 -j NFQUEUE --queue-num 0``, and runs this process:
it binds queue 0 in every rank namespace of the trial (one netlink socket each, opened after
``setns`` into that namespace), notes each queued packet's arrival, and accepts it once
``delay`` has passed. Packets leave in arrival order, so one ``NFQNL_MSG_VERDICT_BATCH`` releases
all that are due. Delaying what arrives at every rank delays what leaves every rank by the same
amount, so the one-way delay between ranks is the one the trial asked for.

It delays on the receiving side because a packet held at the sender still counts against its
socket's TCP small-queue budget (netem orphans the packet; a queue cannot), which would throttle
a 20 ms path to a few Mbit/s. Where the process dies, packets in the queue are dropped, not
passed (no ``fail-open``, no ``--queue-bypass``): a trial never runs unshaped while claiming a
delay.

Run as ``python -m trainbed.orchestrator.local.delay_line --delay-s 0.02 --ready FILE NS...``; it
writes FILE (JSON: pid, delay_s, netns, queue) once every queue is bound. ``--probe NS`` binds
and exits 0, or prints why not and exits 1.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
MSG_PACKET, MSG_CONFIG, MSG_VERDICT_BATCH = 0, 2, 3
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
CFG_CMD, CFG_PARAMS, CFG_QUEUE_MAXLEN, CFG_MASK, CFG_FLAGS = 1, 2, 3, 4, 5
CMD_BIND = 1
COPY_META = 1
F_GSO = 4  # hand over GSO packets whole: one verdict per super-packet
ATTR_PACKET_HDR = 1
ATTR_VERDICT_HDR = 2
NF_ACCEPT = 1
CLONE_NEWNET = 0x40000000
#: Packets the kernel may hold per queue before it drops: a 20 ms path at 10 Gbit/s holds ~400
#: GSO packets, or ~17 000 of 1500 bytes.
QUEUE_MAXLEN = 1 << 17
RCVBUF = 32 << 20


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, queue: int, attrs: list[bytes], seq: int, flags: int) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0)
    return header + body


def packet_ids(data: bytes) -> tuple[list[int], list[int]]:
    """The packet ids of the queued-packet messages in one netlink read, and any error codes."""
    ids: list[int] = []
    errors: list[int] = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | MSG_PACKET:
            at = offset + 20  # nlmsghdr (16) + nfgenmsg (4)
            while at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr & 0x3FFF == ATTR_PACKET_HDR:
                    ids.append(struct.unpack_from(">I", data, at + 4)[0])
                at += (size + 3) & ~3
        elif kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, offset + 16)[0]
            if code:
                errors.append(-code)
        offset += (length + 3) & ~3
    return ids, errors


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _ack(sock: socket.socket, what: str) -> None:
    _, errors = packet_ids(sock.recv(65536))
    if errors:
        raise OSError(errors[0], f"NFQUEUE {what}: {os.strerror(errors[0])}")


def bind_queue(netns: str, queue: int = 0) -> socket.socket:
    """A netlink socket bound to NFQUEUE ``queue`` inside ``netns`` (then back to our own)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
    try:
        with contextlib.suppress(OSError):  # SO_RCVBUFFORCE (33) is root's; a smaller one will do
            sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)
        sock.bind((0, 0))
        flags = NLM_F_REQUEST | NLM_F_ACK
        sock.send(
            _message(
                MSG_CONFIG, queue, [_attr(CFG_CMD, struct.pack("=BBH", CMD_BIND, 0, 0))], 1, flags
            )
        )
        _ack(sock, f"bind queue {queue} in {netns}")
        params = [
            _attr(CFG_PARAMS, struct.pack(">IB", 0, COPY_META)),
            _attr(CFG_QUEUE_MAXLEN, struct.pack(">I", QUEUE_MAXLEN)),
            _attr(CFG_MASK, struct.pack(">I", F_GSO)),
            _attr(CFG_FLAGS, struct.pack(">I", F_GSO)),
        ]
        sock.send(_message(MSG_CONFIG, queue, params, 2, flags))
        _ack(sock, f"configure queue {queue} in {netns}")
    except BaseException:
        sock.close()
        raise
    return sock


def run(sockets: list[socket.socket], delay_s: float, queue: int = 0) -> None:
    """Accept each packet ``delay_s`` after it was queued, until SIGTERM."""
    pending = {sock.fileno(): collections.deque() for sock in sockets}
    by_fd = {sock.fileno(): sock for sock in sockets}
    stop = False

    def terminate(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, terminate)
    while not stop:
        now = time.monotonic()
        due = [q[0][0] for q in pending.values() if q]
        timeout = max(0.0, min(due) - now) if due else 0.5
        try:
            ready, _, _ = select.select(list(by_fd), [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            while True:
                try:
                    data = by_fd[fd].recv(1 << 18, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError as err:
                    if err.errno == errno.ENOBUFS:
                        # notifications were lost; their packets are still queued, and the
                        # next batch verdict (ids are increasing) releases them too
                        continue
                    raise
                arrived = time.monotonic() + delay_s
                ids, _ = packet_ids(data)
                pending[fd].extend((arrived, packet) for packet in ids)
        now = time.monotonic()
        for fd, queued in pending.items():
            last = None
            while queued and queued[0][0] <= now:
                last = queued.popleft()[1]
            if last is not None:
                verdict = _attr(ATTR_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, last))
                by_fd[fd].send(_message(MSG_VERDICT_BATCH, queue, [verdict], 0, NLM_F_REQUEST))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("netns", nargs="+", help="rank namespaces (names under /run/netns)")
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--ready", type=Path, help="written (JSON) once every queue is bound")
    parser.add_argument("--probe", action="store_true", help="bind, then exit 0 (or 1: why not)")
    args = parser.parse_args(argv)
    try:
        sockets = [bind_queue(ns, args.queue) for ns in args.netns]
    except OSError as err:
        print(f"cannot bind NFQUEUE {args.queue}: {err}", file=sys.stderr)
        return 1
    if args.probe:
        for sock in sockets:
            sock.close()
        return 0
    if args.ready is not None:
        record = {"pid": os.getpid(), "delay_s": args.delay_s, "netns": args.netns}
        tmp = args.ready.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, args.ready)
    run(sockets, args.delay_s, args.queue)
    return 0


if __name__ == "__main__":
    sys.exit(main())
