"""Audio fingerprints (curation_dagster/dedup/audio.py)."""

from __future__ import annotations

import numpy as np

from curation_dagster.dedup.audio import AudioFingerprinter
from curation_dagster.dedup.perceptual import popcount
from tests.engine.dedup.sound_fixtures import sound, tune


def test_a_quieter_copy_has_the_same_hashes() -> None:
    fingerprinter = AudioFingerprinter()
    original = fingerprinter.fingerprint(sound(tune(0)))
    quieter = fingerprinter.fingerprint(sound(tune(0) * 0.25, "FLAC"))
    assert int(popcount(original.hashes ^ quieter.hashes).max()) <= 2


def test_an_mp3_copy_stays_within_the_default_distance_window_by_window() -> None:
    fingerprinter = AudioFingerprinter()
    original = fingerprinter.fingerprint(sound(tune(1)))
    mp3 = fingerprinter.fingerprint(sound(tune(1), "MP3"))
    distances = popcount(original.hashes ^ mp3.hashes[: len(original.hashes)])
    assert float(np.mean(distances <= 10)) >= 0.9


def test_windows_follow_the_rate_and_silence_is_not_informative() -> None:
    samples = np.concatenate([tune(2, seconds=4.0), np.zeros(4 * 22050, np.float32)])
    fingerprint = AudioFingerprinter().fingerprint(sound(samples))
    assert len(fingerprint.hashes) == 13  # 8 s, 2 s windows every 0.5 s
    assert fingerprint.informative[:5].all()
    assert not fingerprint.informative[-4:].any()


def test_a_sound_shorter_than_a_window_has_no_hashes() -> None:
    fingerprint = AudioFingerprinter().fingerprint(sound(tune(3, seconds=1.5)))
    assert len(fingerprint.hashes) == 0
