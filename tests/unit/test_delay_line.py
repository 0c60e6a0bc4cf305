"""The delay line's netlink parsing, on messages built as the kernel's nfnetlink_queue sends
them (the live queue is exercised by tests/e2e/test_network_local.py)."""

from __future__ import annotations

import struct

from trainbed.orchestrator.local import delay_line


def _packet(packet_id: int) -> bytes:
    hdr = delay_line._attr(delay_line.ATTR_PACKET_HDR, struct.pack(">IHB", packet_id, 0x0800, 3))
    other = delay_line._attr(9, b"\0" * 6)  # an attribute the line ignores
    kind = (delay_line.NFNL_SUBSYS_QUEUE << 8) | delay_line.MSG_PACKET
    body = struct.pack("=BBH", 2, 0, 0) + other + hdr
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_delay_line_reads_packet_ids_and_errors() -> None:
    error = struct.pack("=IHHII", 36, delay_line.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", -1)
    error += b"\0" * 16
    data = _packet(7) + _packet(8) + error + _packet(2**32 - 1)
    assert delay_line.packet_ids(data) == ([7, 8, 2**32 - 1], [1])
    ack = struct.pack("=IHHII", 36, delay_line.NLMSG_ERROR, 0, 1, 0) + b"\0" * 20
    assert delay_line.packet_ids(ack) == ([], [])
