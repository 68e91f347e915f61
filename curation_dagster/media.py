"""Media helpers: an item's media bytes (inline or, for large media, from the file its `uri` names) and the
one MP4 video encoder every stage uses, which gives the same bytes on every run."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import fsspec


def media_bytes(row: Mapping[str, Any]) -> bytes:
    """The encoded media of a row: the `media` column, else the file at `uri` (large media stays a file)."""
    data = row.get("media")
    if data is not None:
        return bytes(data)
    uri = row.get("uri")
    if not uri or "#" in str(uri):
        raise ValueError(f"item has no inline media and its uri {uri!r} is not a file")
    with fsspec.open(str(uri), "rb") as handle:
        return bytes(handle.read())


def first_video_frame(data: bytes) -> Any:
    """The first decodable frame of an encoded clip as an RGB PIL image; PyAV's errors are `ValueError`s
    or `OSError`s, and a clip without a video frame is a `ValueError`."""
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError("the clip has no video frame")


@dataclass(frozen=True)
class VideoEncoding:
    """An FFmpeg video encoder by name and its private options, for `encode_mp4`."""

    codec: str
    options: Mapping[str, str]


H264_VIDEO: Final = VideoEncoding("libx264", {"preset": "medium", "crf": "23", "x264-params": "asm=0"})
"""H.264 by x264 in plain C. With its assembly on, x264's AVX-512 code for the macroblock tree reads memory it
never wrote, so a clip's bytes changed from run to run, and its other SIMD code does not round as its C code
does, so they changed from CPU to CPU; the C code is the same everywhere and fast enough for short clips."""

MPEG4_VIDEO: Final = VideoEncoding("mpeg4", {"qscale": "4"})
"""MPEG-4 part 2 at a fixed quantiser: FFmpeg's own encoder, which every PyAV build has."""


def encode_mp4(frames: Iterable[Any], fps: int | Fraction, encoding: VideoEncoding = MPEG4_VIDEO) -> bytes:
    """RGB frames (height x width x 3 uint8 arrays or RGB images, all of one even size) as a yuv420p MP4
    at `fps`, byte-identical on every run; `ValueError` when there are none."""
    import av
    import numpy as np
    from av.codec.context import Flags

    time_base = 1 / Fraction(fps)
    buffer = io.BytesIO()
    # bitexact keeps the muxer's and the encoder's version strings and the creation time out of the file.
    with av.open(buffer, mode="w", format="mp4", container_options={"fflags": "+bitexact"}) as target:
        stream: Any = None
        for index, picture in enumerate(frames):
            array = np.ascontiguousarray(np.asarray(picture, dtype=np.uint8))
            if stream is None:
                stream = target.add_stream(encoding.codec, rate=fps, options=dict(encoding.options))
                context = stream.codec_context
                context.height, context.width = array.shape[:2]
                context.pix_fmt = "yuv420p"
                context.time_base = time_base
                context.flags |= Flags.bitexact
                # Set here, not left to FFmpeg's one thread per CPU: the output depends on the thread count.
                context.thread_count = 1
                context.thread_type = "NONE"
                stream.time_base = time_base
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p", threads=1)
            frame.pts = index
            frame.time_base = time_base
            target.mux(stream.encode(frame))
        if stream is None:
            raise ValueError("no frames to encode")
        target.mux(stream.encode(None))
    return buffer.getvalue()


def sample_video_frames(source: Any, frames_per_second: float, max_frames: int, side: int) -> Any:
    """Grayscale `side` x `side` grids `(frames, side, side)` of a video (bytes or a binary file) sampled at
    `frames_per_second`: the first frame at or after each tick, time measured from the first frame, at
    most `max_frames`; ValueError when no frame decodes. Shared by video dedup and the motion filter."""
    import av
    import numpy as np

    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
    grids: list[Any] = []
    with av.open(handle, mode="r") as container:
        stream = container.streams.video[0]
        start: float | None = None
        tick = 0
        for position, frame in enumerate(container.decode(stream)):
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            seconds = frame.time if frame.time is not None else position / rate
            start = seconds if start is None else start
            if seconds - start + 1e-6 < tick / frames_per_second:
                continue
            small = frame.reformat(width=side, height=side, format="gray", interpolation="AREA")
            grids.append(small.to_ndarray().astype(np.float32))
            tick = int((seconds - start) * frames_per_second + 1e-6) + 1
            if len(grids) >= max_frames:
                break
    if not grids:
        raise ValueError("no decodable video frame")
    return np.stack(grids)
