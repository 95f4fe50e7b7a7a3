"""Writes the seed corpus of tests/fuzz/fuzz_websocket.c into
tests/fuzz/corpus/fuzz_websocket/: one input per frame shape worth starting
from (byte 0: the target's flags, byte 1: feed piece size, then client
bytes). Run from the repository root."""
import os
import struct
import zlib

D = "tests/fuzz/corpus/fuzz_websocket"


def frame(op, payload, fin=True, rsv1=False, mask=b"\x01\x02\x03\x04", masked=True):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    m = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        h = bytes([b0, m | n])
    elif n < 65536:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return h + payload
    return h + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def deflate(data):
    c = zlib.compressobj(wbits=-15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


SNOW = "é€𝄞".encode()
SEEDS = {
    "text": (0x10, 0, frame(1, b"hello") + frame(8, struct.pack(">H", 1000) + b"bye")),
    "binary_frag": (0x10, 3, frame(2, b"ab", fin=False) + frame(9, b"p")
                    + frame(0, b"cd", fin=False) + frame(0, b"ef")),
    "utf8_split": (0x10, 1, frame(1, SNOW[:3], fin=False) + frame(0, SNOW[3:])),
    "bad_utf8": (0, 0, frame(1, b"\xed\xa0\x80")),
    "unmasked": (0, 0, frame(1, b"x", masked=False)),
    "rsv2": (0, 0, bytes([0x81 | 0x20, 0x80, 0, 0, 0, 0])),
    "len16": (0x18, 7, frame(2, b"x" * 300)),
    "len64": (0x10, 0, frame(2, b"y" * 70000)),
    "len64_msb": (0, 0, bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])),
    "deflate": (0x11, 0, frame(1, deflate(b"hello hello hello"), rsv1=True)
                + frame(1, deflate(b"again"), rsv1=True)),
    "deflate_frag": (0x17, 5, frame(1, deflate(b"x" * 5000)[:10], fin=False, rsv1=True)
                     + frame(0, deflate(b"x" * 5000)[10:])),
    "deflate_bomb": (0x19, 0, frame(2, deflate(b"\0" * 100000), rsv1=True)),
    "close_codes": (0, 0, frame(8, struct.pack(">H", 1005))),
    "close_1byte": (0, 0, frame(8, b"\x03")),
    "ping_big": (0, 0, bytes([0x89, 0x80 | 126, 0, 126]) + b"\0" * 130),
    "offer": (0, 0, b"permessage-deflate; client_max_window_bits; "
              b"server_max_window_bits=10, permessage-deflate"),
    "offer_bad": (0, 0, b"permessage-deflate; server_max_window_bits=8; foo, "
                  b"x-webkit-deflate-frame"),
}

if __name__ == "__main__":
    os.makedirs(D, exist_ok=True)
    for name, (flags, piece, data) in SEEDS.items():
        with open(os.path.join(D, name), "wb") as f:
            f.write(bytes([flags, piece]) + data)
