"""The project's exceptions. Each class says whether retrying the same work can help."""

from __future__ import annotations


class CurationError(Exception):
    """Base of every error this package raises on purpose."""

    retryable: bool = False


class SpecError(CurationError):
    """A dataset-version spec is invalid; the message names the file and the field."""


class ShardNameError(CurationError):
    """A shard key is empty or would escape the lake."""


class ModelNotConfigured(CurationError):
    """A model's weights are not where the settings say; the message names the setting to fill in."""


class LakeIOError(CurationError):
    """Reading or writing the lake failed in a way that a retry may fix (I/O, a busy file)."""

    retryable = True


class LakeLockUnavailable(CurationError):
    """The lake cannot be locked for a cross-shard stage; the message says what to configure."""


class StageInputMissing(CurationError):
    """A stage's upstream output for a shard does not exist yet: materialize the upstream stage first."""


class ReleaseError(CurationError):
    """A release cannot be built from the lake as it is: an item's media is unreadable or a file is missing."""


class LabelsError(CurationError):
    """A labelled file (seeds, an evaluation set, a round's labels) cannot be used as it is; the message
    names the file and line to fix."""


class SettingError(CurationError):
    """A deployment setting ($CURATION_*) asks for something this install cannot give: a value the project
    does not know, or an optional extra that is not installed; the message says what to set or install."""


class WorkerLost(CurationError):
    """A worker process exited before answering (killed, out of memory, a crash in native code); a retry
    may help when memory was short, and fewer workers ($CURATION_WORKERS) need less of it."""

    retryable = True
