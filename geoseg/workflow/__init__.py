"""Workflows: a YAML file of typed steps, validated whole, rerun by content hash; the demo."""

from __future__ import annotations

from geoseg.workflow._demo import run_demo
from geoseg.workflow._load import load_workflow
from geoseg.workflow._runner import StepEvent, run_workflow
from geoseg.workflow._spec import STATE_FILE, Item
from geoseg.workflow._steps import stack_vrt

__all__ = ["STATE_FILE", "Item", "StepEvent", "load_workflow", "run_demo", "run_workflow", "stack_vrt"]
