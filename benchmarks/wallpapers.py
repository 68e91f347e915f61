"""Real pictures for the image benchmarks: the desktop wallpapers that Debian's packages ship (photographs,
renders, gradients and abstract shapes) and the two photographs in scikit-learn's wheel.

The packages come from the Debian archive this machine's apt is configured for (`apt-get download`, no
installation), once, into a cache folder (`CURATION_BENCH_CACHE`, default `~/.cache/curation_dagster`);
folders already installed under /usr/share are used as they are. Each design is one picture, its largest
landscape file, reduced to `side` pixels on its longer side. Where a package ships a design in several
colourings (Plasma's light and dark images, GNOME's `-l` and `-d`, MATE's warm, cold and dark Ubuntu MATE
pictures, its light and dark stripes), each colouring is its own picture with the same `family`: colour
variants of one design are distinct pictures, the hard negatives of a near-duplicate search. Flat
single-colour backgrounds are left out.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGES = ("plasma-workspace-wallpapers", "gnome-backgrounds", "mate-backgrounds", "ukui-wallpapers")
_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: MATE ships one elephant design at three sizes; UKUI's 20.04 default is its Focal picture.
_SAME_DESIGN = {"Elephants_3840x2160": "Elephants", "Elephants_5640x3172": "Elephants"}


@dataclass(frozen=True)
class Picture:
    name: str
    family: str
    """Pictures of one family are colourings of one design."""
    image: Image.Image


def cache_folder() -> Path:
    return Path(os.environ.get("CURATION_BENCH_CACHE", Path.home() / ".cache" / "curation_dagster"))


def package_root(package: str) -> Path:
    """Where a package's files are: / when it is installed, else its archive unpacked into the cache."""
    if subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0:
        return Path("/")
    root = cache_folder() / "debian" / package
    if not (root / "usr").is_dir():
        download = cache_folder() / "debian" / "archives"
        download.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "-q", package], cwd=download, check=True, capture_output=True)
        archive = next(download.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(archive), str(root)], check=True)
    return root


def _largest(files: list[Path]) -> Path:
    """The landscape file with the most pixels (from its name, WIDTHxHEIGHT, else its header)."""

    def size(path: Path) -> tuple[int, int]:
        found = re.fullmatch(r"(\d+)x(\d+)", path.stem)
        if found:
            return int(found[1]), int(found[2])
        with Image.open(path) as image:
            return image.size

    landscape = [path for path in files if size(path)[0] >= size(path)[1]] or files
    return max(landscape, key=lambda path: size(path)[0] * size(path)[1])


def design_files() -> list[tuple[str, str, Path]]:
    """(name, family, file) of every design, in a fixed order."""
    found: list[tuple[str, str, Path]] = []
    plasma = package_root("plasma-workspace-wallpapers") / "usr/share/wallpapers"
    for folder in sorted(path for path in plasma.iterdir() if (path / "contents").is_dir()):
        for colouring in ("images", "images_dark"):
            files = [p for p in (folder / "contents" / colouring).glob("*") if p.suffix in _SUFFIXES]
            if files:
                found.append((f"plasma/{folder.name}/{colouring}", f"plasma/{folder.name}", _largest(files)))
    gnome = package_root("gnome-backgrounds") / "usr/share/backgrounds/gnome"
    for path in sorted(gnome.glob("*.webp")):
        found.append((f"gnome/{path.stem}", f"gnome/{re.sub(r'-[ld]$', '', path.stem)}", path))
    mate = package_root("mate-backgrounds") / "usr/share/backgrounds/mate"
    for path in sorted(mate.rglob("*")):
        if path.suffix.lower() not in _SUFFIXES or path.stem in _SAME_DESIGN:
            continue
        family = path.stem
        if path.stem.startswith("Ubuntu-Mate-"):
            family = "Ubuntu-Mate"
        elif path.stem.startswith("MATE-Stripes-"):
            family = "MATE-Stripes"
        found.append((f"mate/{path.stem}", f"mate/{family}", path))
    ukui = package_root("ukui-wallpapers") / "usr/share/backgrounds"
    for path in sorted(ukui.rglob("*")):
        if path.suffix.lower() in _SUFFIXES:
            found.append((f"ukui/{path.stem}", f"ukui/{path.stem}", path))
    return found


def _flatten(image: Image.Image) -> Image.Image:
    """RGB; pictures with transparency over MATE's dark teal, as the desktop shows them (MATE's silk,
    waves and stripes are white drawn only in their alpha channel)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (38, 74, 84, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _blank(image: Image.Image) -> bool:
    """One flat colour (GNOME's `vnc` backgrounds): nothing for a perceptual hash to see."""
    return float(np.asarray(image, dtype=np.float32).std(axis=(0, 1)).max()) < 1.0


def pictures(side: int = 1024) -> list[Picture]:
    """Every design as an RGB picture of `side` pixels on its longer side, and the two scikit-learn
    photographs at their own size (640 x 427)."""
    from sklearn.datasets import load_sample_images

    result: list[Picture] = []
    for name, family, path in design_files():
        with Image.open(path) as opened:
            opened.draft("RGB", (side, side))
            image = _flatten(opened)
        if _blank(image):
            continue
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        result.append(Picture(name, family, image))
    for index, array in enumerate(load_sample_images().images):
        name = f"sklearn/{('china', 'flower')[index]}"
        result.append(Picture(name, name, Image.fromarray(array)))
    return result
