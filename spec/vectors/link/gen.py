#!/usr/bin/env python3
"""Generates the link test vectors (spec/01-link.md §5, §4) independently of
the Go code, with the `cryptography` package's AES-256-GCM. Run from this
directory: python3 gen.py"""
import json
import struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY = bytes(range(32))


def nonce(n):
    return b"\x00" * 4 + struct.pack(">Q", n)


def rekey(k):
    return AESGCM(k).encrypt(nonce(2**64 - 1), b"\x00" * 32, b"")[:32]


def frames():
    k, n, out = KEY, 0, []
    seq = [(0x00, b"hello"), (0x01, b""), (0x00, b"\x5a" * 300), (0x02, b""), (0x00, b"after rekey")]
    for typ, body in seq:
        ct = AESGCM(k).encrypt(nonce(n), bytes([typ]) + body, b"")
        n += 1
        out.append({"type": typ, "body": body.hex(), "wire": (struct.pack(">H", len(ct)) + ct).hex()})
        if typ == 0x02:
            k = rekey(k)
    return {"cipher": "AESGCM", "key": KEY.hex(), "frames": out}


def item(t, v):
    return bytes([t]) + struct.pack(">H", len(v)) + v


def payloads():
    cert = bytes([1]) + bytes(136)
    valid = [
        {"versions": [1], "hex": item(1, b"\x00\x01").hex()},
        {"versions": [1, 2], "chosen": 2, "hex": (item(1, b"\x00\x01\x00\x02") + item(2, b"\x00\x02")).hex()},
        {"versions": [3], "cert": cert.hex(), "hex": (item(1, b"\x00\x03") + item(3, cert)).hex()},
        # Unknown items and padding are skipped.
        {"versions": [1], "hex": (item(0x7f, b"pad") + item(0x40, b"future") + item(1, b"\x00\x01")).hex(),
         "note": "unknown and padding items ignored"},
    ]
    invalid = [
        {"hex": "01", "why": "truncated item header"},
        {"hex": item(1, b"\x00\x01")[:-1].hex(), "why": "value shorter than length"},
        {"hex": item(1, b"\x00").hex(), "why": "odd versions length"},
        {"hex": item(1, b"").hex(), "why": "empty versions"},
        {"hex": item(1, b"\x00\x01" * 17).hex(), "why": "more than 16 versions"},
        {"hex": item(2, b"\x00").hex(), "why": "chosen of 1 byte"},
        {"hex": (item(1, b"\x00\x01") + item(1, b"\x00\x02")).hex(), "why": "duplicate item"},
    ]
    return {"valid": valid, "invalid": invalid}


with open("frames.json", "w") as f:
    json.dump(frames(), f, indent=1)
    f.write("\n")
with open("payloads.json", "w") as f:
    json.dump(payloads(), f, indent=1)
    f.write("\n")
