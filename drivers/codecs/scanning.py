"""Stream resynchronisation shared by the serial sensor codecs.

A serial sensor sends frames back to back; a reader sees them in arbitrary
chunks, with line noise, frames cut short when the sensor powered up or the
adapter was plugged in mid-frame, and corrupted bytes. `scan_stream` walks a
buffer, hands every candidate frame start to a codec-specific `parse`, and
returns events in stream order plus the bytes that may still become a frame.

Events are plain tuples so they cost nothing on MicroPython:
  (FRAME, decoded)    decoded is a dict from the codec
  (kind, detail)      kind is one of ERROR_KINDS, detail a short str

MicroPython-compatible: no typing, no dataclasses.
"""

FRAME = "frame"
GARBAGE = "garbage"  # bytes that are not part of any frame
CHECKSUM = "checksum"  # frame shape right, checksum wrong
LENGTH = "length"  # frame cut short, wrong length field, or missing terminator
FORMAT = "format"  # checksum right (or none) but a field cannot be decoded
RANGE = "range"  # decoded, but outside what the sensor can measure

ERROR_KINDS = (GARBAGE, CHECKSUM, LENGTH, FORMAT, RANGE)

# What `parse` returns when the candidate is not complete yet.
NEED_MORE = None


def _tail_prefix_start(buf, sync, start):
    """Index where the buffer ends with a proper prefix of `sync`, else len(buf).

    A sync marker split across two reads must be kept, not reported as garbage.
    """
    n = len(buf)
    k = len(sync) - 1
    if k > n - start:
        k = n - start
    while k > 0:
        if buf[n - k :] == sync[:k]:
            return n - k
        k -= 1
    return n


def scan_stream(buf, sync, parse):
    """Split `buf` into events and an unconsumed remainder.

    `parse(buf, i)` is called with `buf[i:]` starting with `sync` and returns
    (kind, end, data):
      - (NEED_MORE, 0, None): the candidate may still complete; keep buf[i:];
      - (FRAME, end, decoded): a frame occupying buf[i:end];
      - (GARBAGE, 0, None): the sync bytes were not a frame start after all;
      - (error_kind, end, detail): a broken frame that occupied at most buf[i:end].

    After a broken frame scanning resumes at the next sync marker *inside* it,
    not after it, so a real frame that began inside a partial one is never lost.
    Returns (events, rest) where rest is bytes.
    """
    events = []
    n = len(buf)
    i = 0
    garbage_from = -1
    while i < n:
        j = buf.find(sync, i)
        if j < 0:
            keep = _tail_prefix_start(buf, sync, i)
            if keep > i and garbage_from < 0:
                garbage_from = i
            if garbage_from >= 0 and keep > garbage_from:
                events.append(_garbage(keep - garbage_from))
            return events, bytes(buf[keep:])
        if j > i and garbage_from < 0:
            garbage_from = i
        kind, end, data = parse(buf, j)
        if kind == GARBAGE:
            if garbage_from < 0:
                garbage_from = j
            i = j + 1
            continue
        if garbage_from >= 0:
            events.append(_garbage(j - garbage_from))
            garbage_from = -1
        if kind is NEED_MORE:
            return events, bytes(buf[j:])
        if end <= j:
            end = j + 1  # a parse must always make progress
        if kind == FRAME:
            events.append((FRAME, data))
            i = end
            continue
        events.append((kind, data))
        k = buf.find(sync, j + 1)
        if 0 <= k < end:
            i = k
        elif end >= n:
            # The broken frame ran to the end of what was read: a sync marker
            # split at its tail may start the next frame, so keep it.
            i = _tail_prefix_start(buf, sync, j + 1)
        else:
            i = end
    if garbage_from >= 0:
        events.append(_garbage(n - garbage_from))
    return events, b""


def _garbage(count):
    return (GARBAGE, f"{count} byte{'' if count == 1 else 's'} outside any frame")


def frames_of(events):
    """The decoded dicts among the events, in order."""
    return [ev[1] for ev in events if ev[0] == FRAME]


def hexstr(data):
    """Bytes as spaced hex for details and logs (bytes.hex differs across ports)."""
    return " ".join([f"{b:02X}" for b in data])
