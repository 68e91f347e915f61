"""The release's settings: how the final training set is cut into files and what its dataset card says."""

from __future__ import annotations

from pydantic import Field, model_validator

from curation_dagster.spec.base import Modality, StrictSettings

#: A license id as the Hugging Face Hub writes them (`apache-2.0`, `cc-by-4.0`, `other`, `unknown`).
_LICENSE_ID = r"^[a-z0-9][a-z0-9.+-]{0,63}$"


class ReleaseSettings(StrictSettings):
    """How `<version>/release` is cut into files, and the dataset card's license and title."""

    rows_per_parquet_file: int = Field(100_000, gt=0)
    """Rows per Parquet file of each config (modality) at most; `parquet_max_bytes` closes a file sooner."""
    parquet_max_bytes: int = Field(2**29, gt=0)
    """Largest Parquet file's rows in bytes of text and inline media (512 MiB, before compression): media
    is inline, so a video config would otherwise grow files without bound. A file is closed before a row
    would take it past this; a row larger than it gets a file of its own."""
    row_group_rows: int = Field(1_000, gt=0)
    """Rows per Parquet row group (the unit a reader loads at once)."""
    webdataset_max_bytes: int = Field(2**30, gt=0)
    """Largest WebDataset tar in bytes (1 GiB: a shard a loader streams in seconds); a tar is closed before
    an item would take it past this, and an item larger than it gets a tar of its own."""
    license: str = Field("unknown", pattern=_LICENSE_ID)
    """The dataset card's `license`, a Hub license id. `unknown` by default: the items keep the licenses
    of their sources, which the pipeline does not record. `other` needs `license_name`."""
    license_name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    """With `license: other`: a short lower-case name for the license (`my-org-data-license`)."""
    license_link: str | None = None
    """With `license: other`: where the license text is (a URL, or a file name beside the card)."""
    pretty_name: str | None = None
    """The dataset card's title; defaults to the version's name."""
    default_config: Modality | None = None
    """The config `datasets.load_dataset(folder)` loads without a name; defaults to the first of the
    version's `modalities` that has items."""

    @model_validator(mode="after")
    def _other_license_is_named(self) -> ReleaseSettings:
        if self.license == "other" and not self.license_name:
            raise ValueError("license: other needs license_name (and ideally license_link)")
        if self.license != "other" and (self.license_name or self.license_link):
            raise ValueError("license_name and license_link go with license: other only")
        return self
