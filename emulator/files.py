"""Files that went through the emulator (uploads by bots, photos sent by simulated people):
their ids, download paths, and the image sniffing Telegram does on photos."""

from __future__ import annotations

import itertools
import mimetypes
import secrets
import struct

from emulator.state import StoredFile

# Telegram's file ids start with a type marker; ours imitate that so they look familiar.
_PREFIX = {"photo": "AgACAgIAAxk", "document": "BQACAgIAAxk"}


class FileStore:
    def __init__(self) -> None:
        self.by_id: dict[str, StoredFile] = {}
        self.by_path: dict[str, StoredFile] = {}
        self._numbers = itertools.count(1)

    def add(
        self, data: bytes, kind: str, *, file_name: str | None = None, mime_type: str | None = None
    ) -> StoredFile:
        n = next(self._numbers)
        width = height = 0
        if kind == "photo":
            info = image_info(data)
            ext, mime_type, width, height = info if info else ("jpg", "image/jpeg", 1, 1)
            folder = "photos"
        else:
            mime_type = mime_type or (mimetypes.guess_type(file_name or "")[0]) or "application/octet-stream"
            ext = (file_name or "").rpartition(".")[2] if file_name and "." in file_name else "bin"
            folder = "documents"
        f = StoredFile(
            file_id=f"{_PREFIX[kind]}{secrets.token_urlsafe(24)}",
            file_unique_id=f"AQAD{secrets.token_urlsafe(9)}",
            data=data,
            kind=kind,
            file_path=f"{folder}/file_{n}.{ext}",
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
        )
        self.by_id[f.file_id] = f
        self.by_path[f.file_path] = f
        return f

    def get(self, file_id: str) -> StoredFile | None:
        return self.by_id.get(file_id)


def image_info(data: bytes) -> tuple[str, str, int, int] | None:
    """(extension, mime type, width, height) of a PNG, JPEG, GIF or WebP; None if it is not
    an image Telegram would accept as a photo."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return "png", "image/png", w, h
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return "gif", "image/gif", w, h
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp", *_webp_size(data)
    if data.startswith(b"\xff\xd8"):
        size = _jpeg_size(data)
        if size:
            return "jpg", "image/jpeg", *size
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return 1, 1
