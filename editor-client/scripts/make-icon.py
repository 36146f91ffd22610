"""Writes media/icon.png (128x128 RGBA) with only the standard library: a rounded dark tile,
three 'plan' bars (two done, one next) and a check mark. Run: python3 scripts/make-icon.py"""
import os
import struct
import zlib

W = H = 128
BG = (24, 32, 48, 255)
DONE = (88, 196, 140, 255)
NEXT = (255, 196, 64, 255)
TODO = (90, 104, 130, 255)


def inside_rounded(x, y, r=22):
    cx = min(max(x, r), W - 1 - r)
    cy = min(max(y, r), H - 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def pixel(x, y):
    if not inside_rounded(x, y):
        return (0, 0, 0, 0)
    bars = [(28, DONE, 88), (54, DONE, 72), (80, NEXT, 60)]
    for top, color, length in bars:
        if top <= y < top + 14 and 44 <= x < 44 + length:
            return color
    # bullets
    for top, color, _ in bars:
        if (x - 28) ** 2 + (y - (top + 7)) ** 2 <= 36:
            return color if color is not NEXT else NEXT
    if 100 <= y < 106 and 44 <= x < 100:
        return TODO
    return BG


rows = b"".join(b"\x00" + b"".join(struct.pack("4B", *pixel(x, y)) for x in range(W)) for y in range(H))


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 6, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
out = os.path.join(os.path.dirname(__file__), "..", "media", "icon.png")
with open(out, "wb") as f:
    f.write(png)
print(f"wrote {out} ({len(png)} bytes)")
