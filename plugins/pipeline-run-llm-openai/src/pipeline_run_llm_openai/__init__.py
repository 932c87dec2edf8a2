"""OpenAI-compatible streaming chat completions for pipeline-run (entry point ``llm.openai``)."""

from pipeline_run_llm_openai.llm import OpenAIError, OpenAILLM, OpenAIParams

__all__ = ["OpenAIError", "OpenAILLM", "OpenAIParams"]
