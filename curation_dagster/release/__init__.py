"""The release: a version's final training set (the synthesized stage's kept rows of every shard) as files
that training code loads directly, with a dataset card and a manifest that say what is in them and how
they were made.

```
<CURATION_HOME>/<version>/release/
  README.md                                     the dataset card: Hub YAML front matter (configs, features,
                                                license, task categories) and how the set was made
  manifest.json                                 counts, checksums, the spec, code versions, source shards
  data/<modality>/train-00000-of-0000N.parquet  one config per modality: id, text, the media as an
                                                `Image`/`Audio`/`Video` column, uri, scores, provenance
  webdataset/<modality>-00000.tar               image, audio and video items: <id>.<ext>, <id>.json,
                                                <id>.txt; no tar above `release.webdataset_max_bytes`
```

`datasets.load_dataset("<release>", "image")` loads a config with its media decoded: the features are in
the card and in each Parquet file's `huggingface` schema metadata, as `datasets` writes them; plain Arrow
types otherwise (no dictionary or large types), one schema per config. Rows are ordered by id, so the same
lake gives byte-identical files.

`build.py` writes a release, `features.py` says each config's columns and `datasets` features,
`webdataset.py` cuts the tars, `card.py` writes `README.md`, `manifest.py` writes and checks the manifest.
"""

from curation_dagster.release.build import Release, build_release
from curation_dagster.release.card import CARD
from curation_dagster.release.manifest import (
    MANIFEST,
    RELEASE_DIR,
    read_manifest,
    release_dir,
    verify_release,
)

__all__ = [
    "CARD",
    "MANIFEST",
    "RELEASE_DIR",
    "Release",
    "build_release",
    "read_manifest",
    "release_dir",
    "verify_release",
]
