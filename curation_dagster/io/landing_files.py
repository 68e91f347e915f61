"""Which files of the landing zone may be read: names still being written, the rules for symbolic links,
and the walk of a media folder.

Discovery, fingerprints and the readers apply the same rules, so what is discovered, what is fingerprinted
and what is read never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from curation_dagster.io.validate import RejectCode

#: Names of files still being written; neither discovered nor read.
IN_PROGRESS_SUFFIXES: Final = (".tmp", ".part")


def is_in_progress(name: str) -> bool:
    """Whether `name` is that of a file still being written."""
    return name.lower().endswith(IN_PROGRESS_SUFFIXES)


def is_dangling_link(path: Path) -> bool:
    """Whether `path` is a symbolic link to nothing (or a loop)."""
    return path.is_symlink() and not path.exists()


def file_size(path: Path) -> int:
    """The size of a landing file as splitting counts it: its target's, or the link's own when the link
    leads to nothing; 0 for a file that vanished. Registration and the reader of a part must agree."""
    try:
        return path.stat().st_size
    except OSError:
        try:
            return path.lstat().st_size
        except OSError:
            return 0


def link_problem(path: Path, landing: Path) -> tuple[str, str] | None:
    """The reject code and detail of a symbolic link that must not be read, else None.

    A link may be followed only to an existing target inside the landing zone; the detail names the link,
    never what it points to.
    """
    if not path.is_symlink():
        return None
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return RejectCode.DANGLING_SYMLINK, f"{path.name} is a symbolic link to nothing (or a loop)"
    zone = os.path.realpath(landing)
    if os.path.commonpath([zone, target]) != zone:
        return (
            RejectCode.SYMLINK_OUTSIDE_LANDING,
            f"{path.name} is a symbolic link that leads outside the landing zone: copy the data in instead",
        )
    return None


def folder_files(root: Path) -> tuple[list[Path], list[OSError]]:
    """Every file under a media folder in sorted order, and the errors of folders that cannot be listed.

    Links to folders are listed as files: they are never followed, so that a link cannot lead the walk
    out of the landing zone or round in a loop. Hidden and in-progress names are skipped.
    """
    files: list[Path] = []
    unlisted: list[OSError] = []
    for directory, subdirectories, names in os.walk(root, onerror=unlisted.append):
        linked = [name for name in subdirectories if os.path.islink(os.path.join(directory, name))]
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".") and d not in linked)
        files.extend(
            Path(directory, name)
            for name in sorted([*names, *linked])
            if not name.startswith(".") and not is_in_progress(name)
        )
    return sorted(files, key=lambda file: file.relative_to(root).as_posix()), unlisted
