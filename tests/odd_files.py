"""Small files that declare huge frames (the web tests' and ``benchmarks/fuzz_cases_web.py``'s inputs):
GIF screens and frames, PNG headers, PNG-in-Matroska, APNG, animated WebP, multi-page TIFF, images
named like videos. Each is written in well under a second and a few kilobytes (the Matroska ones
excepted: ffmpeg encodes their frames)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def gif(path: Path, screen: tuple[int, int], frame: tuple[int, int] = (10, 10), at: tuple[int, int] = (0, 0),
        frames: int = 2) -> Path:
    """A GIF whose logical screen is ``screen`` (w, h) holding ``frames`` frames of ``frame`` at ``at``
    (a frame may reach beyond the screen): a few dozen bytes."""
    head = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    body = b""
    for _ in range(frames):
        body += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s
        body += b"\x2c" + struct.pack("<HHHHB", *at, *frame, 0) + b"\x02\x02\x44\x01\x00"
    path.write_bytes(head + body + b"\x3b")
    return path


def png_header(path: Path, w: int, h: int) -> Path:
    """A PNG whose header declares ``w`` × ``h`` pixels, with a tiny truncated data stream (any name)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def matroska(path: Path, side: int, frames: int = 2, codec: str = "png") -> Path:
    """A Matroska file of ``frames`` plain ``side`` × ``side`` frames in ``codec`` (PNG: lossless, small)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=red:s={side}x{side}:d={frames / 5}:r=5", "-c:v", codec, str(path)], check=True,
                   timeout=120)
    return path


def animated(path: Path, side: int, frames: int = 2, fmt: str = "PNG") -> Path:
    """An animated PNG (APNG) or WebP of ``frames`` grey ``side`` × ``side`` frames."""
    images = [Image.fromarray(np.full((side, side), 40 * (i + 1), np.uint8)) for i in range(frames)]
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def tiff_pages(path: Path, sides: tuple[int, ...]) -> Path:
    """A multi-page TIFF, one blank bilevel page per side (compressed: small even for a large page)."""
    pages = [Image.new("1", (s, s)) for s in sides]
    pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:], compression="group4")
    return path
