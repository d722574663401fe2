"""Workflows: a YAML file of typed steps, validated whole, rerun by content hash; the demo."""

from __future__ import annotations

from geoseg.workflow._context import readable, stack_vrt
from geoseg.workflow._demo import DemoOptions, DemoResult, run_demo
from geoseg.workflow._kind import Kind, StepModel, kinds
from geoseg.workflow._load import WorkflowFile, load_workflow, output_folder
from geoseg.workflow._runner import RunResult, StepEvent, check_out_dir, run_workflow
from geoseg.workflow._spec import STATE_FILE, Item, Ref, Step, Workflow

__all__ = [
    "STATE_FILE",
    "DemoOptions",
    "DemoResult",
    "Item",
    "Kind",
    "Ref",
    "RunResult",
    "Step",
    "StepEvent",
    "StepModel",
    "Workflow",
    "WorkflowFile",
    "check_out_dir",
    "kinds",
    "load_workflow",
    "output_folder",
    "readable",
    "run_demo",
    "run_workflow",
    "stack_vrt",
]
