"""The reply template, the ``when`` matcher and how an event's steps run (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner.actions import ActionContext, ReplyAction, Step, run_steps
from runner.actions.base import Action
from runner.actions.template import MissingPathError, Template, TemplateSyntaxError
from runner.actions.when import (
    MISSING,
    Condition,
    EventMessage,
    PatternIssue,
    WhenSpec,
    compile_pattern,
    compile_when,
    event_message,
    json_equal,
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
KEYS = st.text(alphabet="abcxyz_-0123456789$ {}.", min_size=1, max_size=6)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
#: Strings that look like references, broken or not.
REFERENCE_LIKE = st.sampled_from(
    ["$request", "$request.d", "$request.t", "$request.d.a.0", "{$request.d}", "x {$request.d.a} y", "$requst.d"]
)
TEMPLATES = st.recursive(
    SCALARS | REFERENCE_LIKE,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)


def request(d: Any, t: str = "get") -> dict[str, Any]:
    return {"t": t, "d": d}


# ---------------------------------------------------------------- template


@given(d=JSON, t=st.text(max_size=8))
@example(d={"$request": "{$request.d}"}, t="$request.d")
@example(d=[1, True, 1.0], t="")
def test_echo_returns_the_data_exactly(d: Any, t: str) -> None:
    out = Template("$request.d").render(request(d, t))
    assert out is d  # not a copy, not a string: the very value
    assert Template("$request").render(request(d, t)) == {"t": t, "d": d}
    assert Template("$request.t").render(request(d, t)) == t


@given(source=TEMPLATES, d=JSON)
def test_any_template_compiles_or_says_where_and_renders_or_names_the_path(source: Any, d: Any) -> None:
    try:
        template = Template(source)
    except TemplateSyntaxError as exc:
        assert "request" in str(exc)
        assert str(exc) == str(Template.problems(source)[0])
        return
    assert Template.problems(source) == []
    try:
        template.render(request(d))
    except MissingPathError as exc:
        assert exc.path.startswith("request.d")
        assert str(exc) == f"the request has no {exc.path}"


@given(value=JSON)
def test_a_template_without_references_is_its_own_value(value: Any) -> None:
    template = Template(value)
    if template.is_literal:
        assert json_equal(template.render(request(None)), value)


@st.composite
def json_and_path(draw: st.DrawFn) -> tuple[Any, list[str], Any]:
    """A JSON value, a path that exists in it, and what is there."""
    value = draw(JSON)
    path: list[str] = []
    here = value
    while isinstance(here, dict | list) and here and draw(st.booleans()):
        if isinstance(here, dict):
            keys = [k for k in here if all(c.isalnum() or c in "_-" for c in k)]
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            path.append(key)
            here = here[key]
        else:
            index = draw(st.integers(0, len(here) - 1))
            path.append(str(index))
            here = here[index]
    return value, path, here


@given(case=json_and_path())
def test_a_path_reaches_what_is_there(case: tuple[Any, list[str], Any]) -> None:
    value, path, expected = case
    ref = ".".join(["$request.d", *path])
    assert Template(ref).render(request(value)) is expected
    assert Template({"x": [ref]}).render(request(value)) == {"x": [expected]}


@pytest.mark.parametrize(
    ("d", "ref", "missing"),
    [
        ({}, "$request.d.count", "request.d.count"),
        ({"a": {"b": 1}}, "$request.d.a.c.e", "request.d.a.c"),
        ([1, 2], "$request.d.2", "request.d.2"),
        ([1, 2], "$request.d.x", "request.d.x"),
        ({"a": "text"}, "$request.d.a.0", "request.d.a.0"),
        (None, "$request.d.a", "request.d.a"),
    ],
)
def test_a_missing_path_is_named(d: Any, ref: str, missing: str) -> None:
    with pytest.raises(MissingPathError) as info:
        Template({"deep": [ref]}).render(request(d))
    assert info.value.path == missing


def test_references_inside_text_become_text() -> None:
    template = Template({"msg": "hi {$request.d.name}, n={ $request.d.n }, all={$request.d}", "t": "{$request.t}!"})
    out = template.render(request({"name": "Ann", "n": 3}, "greet"))
    assert out == {"msg": 'hi Ann, n=3, all={"name":"Ann","n":3}', "t": "greet!"}


@pytest.mark.parametrize("text", ["$5", "$USD", "costs $request", "{not a ref}", "$", "plain", "$request.d\n"])
def test_other_dollar_strings_are_literal(text: str) -> None:
    assert Template(text).render(request(1)) == text


@pytest.mark.parametrize(
    ("source", "loc", "message"),
    [
        ("$requst.d", (), "unknown reference '$requst.d'; did you mean '$request'?"),
        ("$request.x", (), "'$request.x': the request has no 'x' (a request has t, its type, and d, its data)"),
        ("$request.dd", (), "'$request.dd': the request has no 'dd'; did you mean 'd'?"),
        ("$request.t.len", (), "'$request.t.len': request.t is a string, it has no 'len'"),
        ({"a": ["ok", "{$foo.d}"]}, ("a", 1), "unknown reference '{$foo.d}'; references start with $request"),
        ("n {$request.d name}", (), "'{$request.d name}' is not a reference like {$request.d.name}"),
    ],
)
def test_references_the_spec_can_rule_out(source: Any, loc: tuple[Any, ...], message: str) -> None:
    problems = Template.problems(source)
    assert [(p.loc, str(p)) for p in problems] == [(loc, message)]
    with pytest.raises(TemplateSyntaxError):
        Template(source)


# ---------------------------------------------------------------- matcher


@given(pattern=JSON, value=JSON)
@example(pattern={"$in": 3}, value=3)
@example(pattern={"$exists": "yes"}, value=None)
@example(pattern={"a": {"$in": [1], "b": 2}}, value={"a": 1})
@example(pattern={"$nope": 1}, value={"$nope": 1})
def test_any_pattern_compiles_or_reports_and_never_raises_when_matching(pattern: Any, value: Any) -> None:
    issues: list[PatternIssue] = []
    compiled = compile_pattern(pattern, ("data",), issues)
    for issue in issues:
        assert issue.loc[0] == "data" and issue.message
    result = compiled.matches(value)
    assert isinstance(result, bool)
    assert compiled.matches(MISSING) in (False, True)
    if issues:
        assert not result  # a broken pattern matches nothing


def _no_operators(value: Any) -> bool:
    if isinstance(value, dict):
        return not any(k.startswith("$") for k in value) and all(_no_operators(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_operators(v) for v in value)
    return True


@given(value=JSON, data=st.data())
def test_a_pattern_made_of_part_of_a_value_matches_it(value: Any, data: st.DataObject) -> None:
    if not _no_operators(value):
        return
    pattern = value
    if isinstance(value, dict) and value:
        keys = data.draw(st.lists(st.sampled_from(sorted(value)), unique=True))
        pattern = {k: value[k] for k in keys}
    compiled = compile_pattern(pattern, ("data",), issues := [])
    assert issues == []
    assert compiled.matches(value)


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        (1, True, False),
        (True, 1, False),
        (1, 1.0, True),
        (None, None, True),
        ([1, 2], [1, 2], True),
        ([1, 2], [1, 2, 3], False),
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": {"b": "x"}}, {"a": {"b": "x", "c": 0}}, True),
        ({"a": 1}, [("a", 1)], False),
        ({"a": {"$in": ["x", "y"]}}, {"a": "y"}, True),
        ({"a": {"$in": ["x", "y"]}}, {"b": "y"}, False),
        ({"a": {"$exists": False}}, {"b": 1}, True),
        ({"a": {"$exists": False}}, {"a": None}, False),
        ({"a": {"$exists": True}}, {"a": None}, True),
        ({}, {"anything": 1}, True),  # the empty set of fields: any object
        ({}, [], False),
        ({"a": {}}, {"a": {"b": 1}}, True),
        ({"a": {}}, {"a": None}, False),
    ],
)
def test_pattern_semantics(pattern: Any, value: Any, matches: bool) -> None:
    issues: list[PatternIssue] = []
    assert compile_pattern(pattern, ("data",), issues).matches(value) is matches
    assert issues == []


@pytest.mark.parametrize(
    ("pattern", "loc", "message"),
    [
        ({"$inn": [1]}, ("data", "$inn"), "unknown operator '$inn'; did you mean '$in'?"),
        ({"$in": []}, ("data", "$in"), "$in takes a non-empty list of values"),
        ({"x": {"$exists": 1}}, ("data", "x", "$exists"), "$exists takes true or false"),
        ({"$in": [1], "b": 2}, ("data",), "an operator stands alone: write {$in: ...} by itself"),
    ],
)
def test_pattern_mistakes(pattern: Any, loc: tuple[Any, ...], message: str) -> None:
    issues: list[PatternIssue] = []
    compile_pattern(pattern, ("data",), issues)
    assert [(i.loc, i.message) for i in issues] == [(loc, message)]


def test_event_message_views() -> None:
    client = event_message("on_client_message", ("get-count", {"n": 1}, "id-1"))
    assert client == EventMessage(type="get-count", data={"n": 1}, message={"t": "get-count", "d": {"n": 1}})
    app = event_message("on_app_message", ({"type": "chat", "text": "hi"}, "pc-1"))
    assert app == EventMessage(type="chat", data=MISSING, message={"type": "chat", "text": "hi"})
    assert event_message("on_app_message", ("raw text", "pc-1")) == EventMessage(MISSING, MISSING, "raw text")
    assert event_message("on_transcription", ()) == EventMessage(MISSING, MISSING, MISSING)


def _condition(**when: Any) -> Condition:
    condition, issues = compile_when(WhenSpec.model_validate(when))
    assert issues == []
    return condition


def test_when_needs_every_key_to_match() -> None:
    cond = _condition(type=["a", "b"], data={"kind": "x"})
    assert cond.matches(EventMessage("a", {"kind": "x"}, None))
    assert not cond.matches(EventMessage("c", {"kind": "x"}, None))
    assert not cond.matches(EventMessage("b", {"kind": "y"}, None))
    assert not cond.matches(EventMessage(MISSING, {"kind": "x"}, None))
    assert _condition(message={"type": "chat"}).matches(event_message("on_app_message", ({"type": "chat"}, "pc")))


def test_empty_or_null_when_is_a_mistake() -> None:
    assert [i.message for i in compile_when(WhenSpec.model_validate({}))[1]] == [
        "an empty `when` matches nothing useful: give type, data or message"
    ]
    assert [i.loc for i in compile_when(WhenSpec.model_validate({"type": []}))[1]] == [("type",)]


# ---------------------------------------------------------------- steps


class Record(Action):
    """Appends its name to a shared list."""

    def __init__(self, name: str, seen: list[str], fail: bool = False) -> None:
        super().__init__()
        self.name, self.seen, self.fail = name, seen, fail

    async def run(self, ctx: ActionContext) -> None:
        self.seen.append(self.name)
        if self.fail:
            raise RuntimeError("boom")


TYPES = ["a", "b", "c"]
STEP_KINDS = st.one_of(st.just(None), st.sampled_from(TYPES), st.just("otherwise"))


# no deadline: each failing action logs its traceback now, slow to render on a loaded machine
@settings(deadline=None)
@given(kinds=st.lists(STEP_KINDS, max_size=7), msg_type=st.sampled_from([*TYPES, "zzz"]))
async def test_first_when_wins_plain_steps_always_run_otherwise_when_nothing_matched(
    kinds: list[str | None], msg_type: str
) -> None:
    seen: list[str] = []
    steps = []
    for i, kind in enumerate(kinds):
        action = Record(f"{i}", seen, fail=(i == 0))  # a failing action does not stop the rest
        if kind is None:
            steps.append(Step(action))
        elif kind == "otherwise":
            steps.append(Step(action, otherwise=True))
        else:
            steps.append(Step(action, when=_condition(type=kind)))
    await run_steps(steps, ActionContext(event="on_client_message", args=(msg_type, None, "id")))
    # the model: walk the list once, remembering whether a `when` has matched so far
    expected, matched = [], False
    for i, kind in enumerate(kinds):
        if kind is None or (kind == "otherwise" and not matched):
            expected.append(f"{i}")
        elif kind in TYPES and not matched and kind == msg_type:
            matched = True
            expected.append(f"{i}")
    assert seen == expected


# ---------------------------------------------------------------- reply action


class Answers:
    """Records what the reply sent through the context."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, str, Any]] = []
        self.errors: list[tuple[str | None, str]] = []

    def context(self, t: str, d: Any, request_id: str | None = "r1", event: str = "on_client_message") -> ActionContext:
        return ActionContext(
            event=event,
            args=(t, d, request_id),
            send_server_response=lambda rid, mt, data: self.responses.append((rid, mt, data)),
            send_error_response=lambda rid, error: self.errors.append((rid, error)),
        )


@given(t=st.text(max_size=8), d=JSON)
async def test_reply_echo_sends_the_request_back(t: str, d: Any) -> None:
    answers = Answers()
    await ReplyAction(ReplyAction.Params(data="$request.d")).run(answers.context(t, d))
    assert answers.responses == [("r1", t, d)] and answers.errors == []
    assert answers.responses[0][2] is d


async def test_reply_with_a_missing_path_answers_with_an_error_naming_it() -> None:
    answers = Answers()
    reply = ReplyAction(ReplyAction.Params(data={"n": "$request.d.count"}, type="count"))
    await reply.run(answers.context("get-count", {"cnt": 1}))
    assert answers.responses == []
    assert answers.errors == [("r1", "reply to 'get-count': the request has no request.d.count")]
    await reply.run(answers.context("get-count", {"count": 7}, request_id="r2"))
    assert answers.responses == [("r2", "count", {"n": 7})]


async def test_reply_type_must_render_to_a_string() -> None:
    answers = Answers()
    await ReplyAction(ReplyAction.Params(data=1, type="$request.d")).run(answers.context("x", {"not": "text"}))
    assert answers.errors == [("r1", "reply to 'x': type '$request.d' gave dict, not a string")]


async def test_reply_answers_once_and_only_requests() -> None:
    answers = Answers()
    reply = ReplyAction(ReplyAction.Params(data="ok"))
    ctx = answers.context("x", None)
    await reply.run(ctx)
    await reply.run(ctx)  # a second reply to the same firing
    await reply.run(answers.context("x", None, request_id=None))  # no id: the client expects no answer
    await reply.run(ActionContext(event="on_app_message", args=({"x": 1}, "pc")))
    assert answers.responses == [("r1", "x", "ok")] and answers.errors == []


def test_reply_refuses_a_bad_template_when_built() -> None:
    with pytest.raises(TemplateSyntaxError):
        ReplyAction(ReplyAction.Params(data="$request.q"))
