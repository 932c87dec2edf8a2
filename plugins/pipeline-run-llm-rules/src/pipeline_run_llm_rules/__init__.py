"""Offline rule-based responder for pipeline-run (entry point ``llm.rules``)."""

from pipeline_run_llm_rules.responder import Rule, RulesParams, RulesResponder

__all__ = ["Rule", "RulesParams", "RulesResponder"]
