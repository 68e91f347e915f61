"""Dagster resources: the lake, the accelerator and the models, injected into assets as typed parameters."""

from resources.accelerator import AcceleratorResource
from resources.lake import LakeResource
from resources.models import ModelsResource

__all__ = ["AcceleratorResource", "LakeResource", "ModelsResource"]
