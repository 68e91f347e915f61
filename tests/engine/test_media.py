"""Tests of curation_dagster/media.py: the shared MP4 encoder gives the same bytes in every process, under
load and whatever memory it is handed, and writes no version strings or times into the file."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import random
import re
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import av
import numpy as np
import pytest

from curation_dagster.media import H264_VIDEO, MPEG4_VIDEO, VideoEncoding, encode_mp4

FPS = 8
ENCODINGS = {"h264": H264_VIDEO, "mpeg4": MPEG4_VIDEO}
ENCODING_PROCESSES = 3
ROUNDS_PER_PROCESS = 12
BURNING_PROCESSES = 2


def orbiting_squares(frames: int = 24, size: int = 96) -> list[np.ndarray]:
    """Two squares circling each other over a diagonal gradient: motion for B-frames and the lookahead."""
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (255 / (2 * size))
    pictures = []
    for index in range(frames):
        picture = np.stack([ramp, ramp[::-1], np.full((size, size), 40.0)], axis=-1).astype(np.uint8)
        angle = 2 * np.pi * index / frames
        for phase, colour in ((0.0, (250, 220, 30)), (np.pi, (240, 60, 160))):
            x = int(size / 2 - 8 + 28 * np.cos(angle + phase))
            y = int(size / 2 - 8 + 28 * np.sin(angle + phase))
            picture[y : y + 16, x : x + 16] = colour
        pictures.append(picture)
    return pictures


def encode_repeatedly(encoding: VideoEncoding, rounds: int) -> set[str]:
    """The digests of `rounds` encodings of the same frames, each after filling freed heap memory with
    random bytes, so an encoder that reads memory it never wrote sees different values every time."""
    frames = orbiting_squares()
    digests = set()
    for _ in range(rounds):
        garbage = [bytearray(os.urandom(random.randint(1_000, 400_000))) for _ in range(40)]
        del garbage
        digests.add(hashlib.sha256(encode_mp4(frames, FPS, encoding)).hexdigest())
    return digests


def burn_cpu(stop: Any, deadline: float) -> None:
    """Keep a core busy until told to stop (or the deadline passes, whatever happens to the test)."""
    count = 0
    while not stop.is_set() and time.monotonic() < deadline:
        count += 1


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_concurrent_processes_under_load_encode_identical_bytes(name: str) -> None:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    burners = [
        context.Process(target=burn_cpu, args=(stop, time.monotonic() + 60)) for _ in range(BURNING_PROCESSES)
    ]
    for burner in burners:
        burner.start()
    try:
        with ProcessPoolExecutor(ENCODING_PROCESSES, mp_context=context) as pool:
            runs = [
                pool.submit(encode_repeatedly, ENCODINGS[name], ROUNDS_PER_PROCESS)
                for _ in range(ENCODING_PROCESSES)
            ]
            digests = set().union(*(run.result() for run in runs))
    finally:
        stop.set()
        for burner in burners:
            burner.join()

    assert digests == {hashlib.sha256(encode_mp4(orbiting_squares(), FPS, ENCODINGS[name])).hexdigest()}


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_file_holds_no_version_string_or_creation_time(name: str) -> None:
    data = encode_mp4(orbiting_squares(frames=4), FPS, ENCODINGS[name])

    with av.open(io.BytesIO(data)) as container:
        tags = {**container.metadata, **container.streams.video[0].metadata}

    assert re.findall(rb"Lav[fc]\d", data) == []
    assert not {"encoder", "creation_time"} & set(tags)


def test_frames_keep_their_order_count_and_rate() -> None:
    frames = orbiting_squares(frames=10)

    with av.open(io.BytesIO(encode_mp4(frames, FPS, H264_VIDEO))) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate

    assert rate == FPS
    assert len(decoded) == 10
    errors = [[np.abs(d.astype(int) - f.astype(int)).mean() for f in frames] for d in decoded]
    assert [int(np.argmin(row)) for row in errors] == list(range(10))


def test_no_frames_is_an_error() -> None:
    with pytest.raises(ValueError, match="no frames"):
        encode_mp4([], FPS)
