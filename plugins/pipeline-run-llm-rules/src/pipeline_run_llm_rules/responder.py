"""``RulesResponder`` (``llm.rules``): an offline, rule-based brain for voice bots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from runner.frames import (
    Frame,
    FrameDirection,
    LLMResponseEndFrame,
    LLMResponseStartFrame,
    TextFrame,
    TranscriptionFrame,
)
from runner.processors.base import FrameProcessor, ProcessorParams
from runner.text import split_sentences

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Rule(BaseModel):
    """One rule: when ``match`` hits the user's words, say ``reply``."""

    model_config = ConfigDict(extra="forbid")

    match: str | list[str] = Field(
        description="A regular expression (searched, case-insensitive) or a list of keywords (any one matches)."
    )
    reply: str | list[str] = Field(
        description="The answer; a list is used round-robin. {text} is the user's words, {name} a regex group."
    )

    @field_validator("match")
    @classmethod
    def _valid_match(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        elif not [k for k in value if k.strip()]:
            raise ValueError("keyword list is empty")
        return value

    @field_validator("reply")
    @classmethod
    def _has_reply(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("reply list is empty")
        return value

    def pattern(self) -> re.Pattern[str]:
        """The compiled, case-insensitive pattern of this rule."""
        if isinstance(self.match, str):
            return re.compile(self.match, re.IGNORECASE)
        keywords = sorted((k.strip() for k in self.match if k.strip()), key=len, reverse=True)
        alternatives = "|".join(re.escape(k) for k in keywords)
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def replies(self) -> list[str]:
        return [self.reply] if isinstance(self.reply, str) else list(self.reply)


class RulesParams(ProcessorParams):
    """Rules, tried in order; the first that matches answers."""

    rules: list[Rule] = Field(default_factory=list, description="Rules tried in order; the first match answers.")
    rules_file: str | None = Field(
        default=None,
        description="YAML file with more rules (a list, or a mapping with 'rules' and optional 'fallback').",
    )
    fallback: str | None = Field(
        default="Sorry, I did not understand that.",
        description="Reply when no rule matches ({text} allowed); null = stay silent.",
    )

    @model_validator(mode="after")
    def _load_rules_file(self) -> RulesParams:
        if self.rules_file is None:
            return self
        path = Path(self.rules_file).expanduser()
        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read rules_file {str(path)!r}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ValueError(f"rules_file {str(path)!r} is not valid YAML: {exc}") from exc
        if isinstance(data, dict):
            extra = set(data) - {"rules", "fallback"}
            if extra:
                raise ValueError(f"rules_file {str(path)!r}: unknown keys {sorted(extra)}")
            if "fallback" in data:
                self.fallback = data["fallback"]
            data = data.get("rules", [])
        if not isinstance(data, list):
            raise ValueError(f"rules_file {str(path)!r} must hold a list of rules")
        self.rules = [*self.rules, *(Rule.model_validate(item) for item in data)]
        self.rules_file = None  # loaded: validating the dump again must not add the rules twice
        return self


class RulesResponder(FrameProcessor):
    """Answers each final ``TranscriptionFrame`` from a list of rules.

    The transcription passes on first; the reply follows as ``LLMResponseStartFrame``,
    one ``TextFrame`` per sentence and ``LLMResponseEndFrame``. A ``UserTurnFrame`` is a
    final transcription and is answered the same way; interim ones only pass on.
    """

    Params: ClassVar[type[RulesParams]] = RulesParams
    events: ClassVar[tuple[str, ...]] = ("on_reply",)

    params: RulesParams

    def __init__(self, params: RulesParams | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = params if params is not None else self.Params()
        self._compiled = [(rule.pattern(), rule.replies()) for rule in self.params.rules]
        self._turns = [0] * len(self._compiled)

    def reply_for(self, text: str) -> str | None:
        """The reply to ``text`` (advances the round-robin of the matching rule)."""
        for index, (pattern, replies) in enumerate(self._compiled):
            found = pattern.search(text)
            if found is None:
                continue
            reply = replies[self._turns[index] % len(replies)]
            self._turns[index] += 1
            values = {k: v for k, v in found.groupdict().items() if v is not None}
            return _fill(reply, {**values, "text": text})
        if self.params.fallback is None:
            return None
        return _fill(self.params.fallback, {"text": text})

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await self.push_frame(frame, direction)
        if not isinstance(frame, TranscriptionFrame) or not frame.final or direction is not FrameDirection.DOWNSTREAM:
            return
        text = " ".join(frame.text.split())
        self.start_ttfb_metrics()
        self.start_processing_metrics()
        reply = self.reply_for(text) if text else None
        if not reply:
            self.metrics.reset()
            return
        await self.push_frame(LLMResponseStartFrame())
        await self.stop_ttfb_metrics()
        for sentence in split_sentences(reply, final=True)[0]:
            await self.push_frame(TextFrame(text=sentence + " "))
        await self.push_frame(LLMResponseEndFrame())
        await self.stop_processing_metrics()
        await self._call_event_handler("on_reply", text, reply)


def _fill(template: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


__all__ = ["Rule", "RulesParams", "RulesResponder"]
