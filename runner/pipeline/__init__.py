"""Pipelines: linking processors, running them, and the run loop."""

from runner.pipeline.pipeline import Pipeline
from runner.pipeline.runner import PipelineRunner
from runner.pipeline.task import PipelineParams, PipelineTask

__all__ = ["Pipeline", "PipelineParams", "PipelineRunner", "PipelineTask"]
