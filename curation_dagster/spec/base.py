"""What every settings class of a spec shares: strict, frozen pydantic models whose `min_<x>` never
exceeds their `max_<x>`, and the modality names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Modality = Literal["text", "image", "audio", "video"]


class StrictSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _bounds_leave_room(self) -> StrictSettings:
        """Every `min_<x>` at most its `max_<x>`: bounds that no value fits are a typo, not a setting."""
        for name in type(self).model_fields:
            other = f"max_{name[4:]}"
            if not name.startswith("min_") or other not in type(self).model_fields:
                continue
            low, high = getattr(self, name), getattr(self, other)
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name} ({low}) is above {other} ({high}): no value fits")
        return self


def kind_union(classes: Iterable[type[StrictSettings]]) -> Any:
    """The pydantic type "one of `classes`", told apart by their `kind` field: how a spec's registries of
    settings (filters, strategies, recipes) become the types of its sections."""
    members = tuple(classes)
    return Annotated[Union[members], Field(discriminator="kind")]  # noqa: UP007 (a runtime tuple)


def kind_of(settings: type[StrictSettings]) -> str:
    """The `kind` a settings class stands for."""
    return str(settings.model_fields["kind"].default)
