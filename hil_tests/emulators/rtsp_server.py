"""An RTSP camera on loopback: Motion JPEG over RTP (RFC 2435), interleaved in
the RTSP connection (RTP over TCP, RFC 2326 section 10.12), from frames you
give it. Most street cameras speak RTSP; this one speaks the part of it a
camera client uses: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER (keep-alive)
and TEARDOWN. A client asking for RTP over UDP is told 461 (Unsupported
Transport) and must fall back to TCP; OpenCV's FFmpeg backend asks for TCP
from the start.

    with RtspServer(frames, fps=10) as cam:
        url = cam.url            # rtsp://127.0.0.1:<port>/stream
        cam.set_stalled(True)    # sessions stay open, no frame is sent
        cam.set_down(True)       # drops every client and refuses new ones
        cam.set_down(False)

Frames must be at most 2040 pixels a side, multiples of 8 (RFC 2435 sends
width and height in 8-pixel blocks in one byte).
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Sequence

import cv2
import numpy as np

from hil_tests.emulators.camera_server import LoopbackCamera

_PAYLOAD = 1400  # bytes of JPEG scan data per RTP packet
_CLOCK = 90000  # RTP timestamp rate for video


class JpegParts:
    """What RFC 2435 sends of a baseline JPEG: the scan data and the two
    quantisation tables (the receiver rebuilds the headers)."""

    def __init__(self, jpeg: bytes) -> None:
        tables: dict[int, bytes] = {}
        i, self.type, self.width, self.height, self.scan = 2, 1, 0, 0, b""
        while i < len(jpeg):
            marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
            seg = jpeg[i + 4 : i + 2 + length]
            if marker == 0xDB:  # DQT: one or more 8-bit tables
                k = 0
                while k < len(seg):
                    tables[seg[k] & 0x0F] = seg[k + 1 : k + 65]
                    k += 65
            elif marker == 0xC0:  # SOF0: size and the luma sampling (2x2: 4:2:0, type 1; 2x1: 4:2:2, type 0)
                self.height, self.width = struct.unpack(">HH", seg[1:5])
                self.type = 1 if seg[7] == 0x22 else 0
            elif marker == 0xDD:
                raise ValueError("restart markers are not sent by this emulator")
            elif marker == 0xDA:  # SOS: the entropy-coded data follows, up to EOI
                self.scan = jpeg[i + 2 + length : jpeg.rindex(b"\xff\xd9")]
                break
            i += 2 + length
        self.qtables = tables[0] + tables[1]


def rtp_packets(parts: JpegParts, seq: int, timestamp: int, ssrc: int) -> list[bytes]:
    """The RTP packets of one frame (payload type 26, Q 255: tables in band)."""
    out = []
    offset = 0
    while offset < len(parts.scan) or offset == 0:
        chunk = parts.scan[offset : offset + _PAYLOAD]
        last = offset + len(chunk) >= len(parts.scan)
        jpeg_header = struct.pack(">B3sBBBB", 0, offset.to_bytes(3, "big"), parts.type, 255, parts.width // 8, parts.height // 8)
        if offset == 0:
            jpeg_header += struct.pack(">BBH", 0, 0, len(parts.qtables)) + parts.qtables
        rtp = struct.pack(">BBHII", 0x80, (0x80 if last else 0) | 26, (seq + len(out)) & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
        out.append(rtp + jpeg_header + chunk)
        offset += len(chunk)
        if last:
            break
    return out


class RtspServer(LoopbackCamera):
    def __init__(self, frames: Sequence[np.ndarray], fps: float = 10.0, host: str = "127.0.0.1") -> None:
        super().__init__(frames, fps, host)
        self.sessions = 0  # PLAY requests served
        self.udp_refused = 0  # SETUP requests for RTP over UDP, answered 461

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}/stream"

    def encode(self, frames: Sequence[np.ndarray]) -> list[JpegParts]:
        h, w = frames[0].shape[:2]
        if w % 8 or h % 8 or w > 2040 or h > 2040:
            raise ValueError(f"RTP/JPEG carries sizes in 8-pixel blocks up to 2040: {w}x{h} cannot be sent; crop the frames")
        return [JpegParts(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()) for f in frames]

    # ------------------------------------------------------------- session
    def client(self, conn: socket.socket) -> None:
        lock = threading.Lock()  # the RTP sender and the request replies share the socket
        playing = threading.Event()
        buf = b""
        conn.settimeout(0.2)
        threading.Thread(target=self._send_frames, args=(conn, lock, playing), daemon=True).start()
        try:
            while self.serving():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf = self._requests(conn, lock, playing, buf + data)
        finally:
            playing.clear()

    def _requests(self, conn: socket.socket, lock: threading.Lock, playing: threading.Event, buf: bytes) -> bytes:
        """Answer the complete requests in `buf`; returns what is left."""
        while buf:
            if buf[:1] == b"$":  # interleaved RTCP from the client: read and drop
                if len(buf) < 4:
                    return buf
                size = struct.unpack(">H", buf[2:4])[0]
                if len(buf) < 4 + size:
                    return buf
                buf = buf[4 + size :]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf
            head, buf = buf[:end].decode("latin-1"), buf[end + 4 :]
            lines = head.split("\r\n")
            method = lines[0].split(" ")[0]
            fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            size = int(fields.get("content-length", "0"))
            buf = buf[size:]  # no request body matters here
            reply = self._answer(method, fields, playing)
            with lock:
                conn.sendall(reply)
        return buf

    def _answer(self, method: str, fields: dict[str, str], playing: threading.Event) -> bytes:
        cseq = fields.get("cseq", "0")
        extra = ""
        body = b""
        status = "200 OK"
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n"
        elif method == "DESCRIBE":
            body = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=emulated street camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:track0\r\n"
            extra = f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\nContent-Length: {len(body)}\r\n"
        elif method == "SETUP":
            if "TCP" not in fields.get("transport", "").upper():
                self.udp_refused += 1
                status = "461 Unsupported Transport"
            else:
                extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4f2a91c7;timeout=60\r\n"
        elif method == "PLAY":
            self.sessions += 1
            playing.set()
            extra = "Session: 4f2a91c7\r\nRange: npt=0.000-\r\n"
        elif method == "TEARDOWN":
            playing.clear()
        elif method != "GET_PARAMETER":
            status = "405 Method Not Allowed"
        return f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}\r\n".encode() + body

    def _send_frames(self, conn: socket.socket, lock: threading.Lock, playing: threading.Event) -> None:
        seq, ssrc = random.randrange(1 << 16), random.randrange(1 << 32)
        try:
            for i in self.ticks(ready=playing.is_set):
                packets = rtp_packets(self.encoded[i % len(self.encoded)], seq, int(i * _CLOCK / self.fps), ssrc)
                seq += len(packets)
                with lock:
                    for p in packets:
                        conn.sendall(b"$\x00" + struct.pack(">H", len(p)) + p)
        except OSError:
            pass
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # taken down: the client sees the connection drop
            except OSError:
                pass
