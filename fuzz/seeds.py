#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into corpus/<target>/ (git-ignored).

The frames are what `wire::write_message` produces: `u32 LE length | u32 LE
header length | header | payload`, the header in bincode 2's standard
configuration (variant index and integers as varints, strings and byte vectors
as a varint length and the bytes). Run from fuzz/: `python3 seeds.py`.
"""
import os
import struct

PROTOCOL_VERSION = 7

PLANS = [
    "sequential", "multithread", "multithread:2", "multiprocess:4",
    "multiprocess:2:fresh", "multiprocess:2/multithread:2", "cluster:n1,n1,n2",
    "cluster:me@n2:2222,root@10.0.0.1:22", "cluster", "slurm", "slurm:8",
    "multiprocess:2|slurm", "multiprocess:2|slurm:4/sequential",
    "cluster:a,b|multithread:3/multiprocess:1:fresh", " Multithread : 3 / SEQUENTIAL ",
]


def varint(n):
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfb" + struct.pack("<H", n)
    if n < 1 << 32:
        return b"\xfc" + struct.pack("<I", n)
    return b"\xfd" + struct.pack("<Q", n)


def string(b):
    b = b.encode() if isinstance(b, str) else b
    return varint(len(b)) + b


def frame(header, payload=b""):
    return struct.pack("<II", 4 + len(header) + len(payload), len(header)) + header + payload


def hello(version, build_id, plan):
    return varint(0) + varint(version) + string(build_id) + string(plan)


def write(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


build = bytes(range(20))
shutdown = frame(varint(3))
keep_captures = frame(varint(2) + varint(3), b"captures")
ready = frame(varint(0) + varint(PROTOCOL_VERSION) + string(build) + varint(4242))
refused = frame(varint(1) + string("the leader speaks protocol version 6, this worker 7"))
for i, plan in enumerate(PLANS):
    h = frame(hello(PROTOCOL_VERSION, build, plan))
    write("handshake", f"hello-{i}", bytes([127]) + h + keep_captures + shutdown)
    # The high bit: the harness puts a hello of its own build first.
    write("handshake", f"greeted-{i}", bytes([255]) + keep_captures + shutdown)
    write("handshake", f"hello-short-{i}", bytes([0]) + h)
    write("plan_parse", f"plan-{i}", plan.encode())
    write("wire_decode", f"hello-{i}", h + shutdown)
write("handshake", "old-version", bytes([3]) + frame(hello(6, b"", "sequential")))
write("handshake", "ready", bytes([127]) + ready)
write("handshake", "refused", bytes([7]) + refused)
write("wire_decode", "ready", ready)
write("wire_decode", "refused", refused)
write("wire_decode", "keep_captures", keep_captures)
