"""Parsing policy messages and ground-truth strings without evaluating anything."""

import pytest

from rods.env.calls import CallSyntaxError, parse_python_call, parse_tool_calls
from rods.tasks import ToolCall


def test_single_and_multiple_tagged_calls():
    text = (
        'Let me look.\n<tool_call>{"name": "ls", "arguments": {"a": true}}</tool_call>\n'
        '<tool_call>{"name": "cd", "arguments": {"folder": "document"}}</tool_call>'
    )
    parsed = parse_tool_calls(text)
    assert parsed.calls == [ToolCall(name="ls", arguments={"a": True}),
                            ToolCall(name="cd", arguments={"folder": "document"})]
    assert parsed.errors == []


def test_list_inside_a_tag_and_bare_list():
    inside = parse_tool_calls('<tool_call>[{"name": "pwd", "arguments": {}}, {"name": "ls"}]</tool_call>')
    bare = parse_tool_calls('[{"name": "pwd", "arguments": {}}, {"name": "ls", "arguments": {}}]')
    assert [c.name for c in inside.calls] == [c.name for c in bare.calls] == ["pwd", "ls"]


def test_openai_style_string_arguments():
    parsed = parse_tool_calls('<tool_call>{"name": "cd", "arguments": "{\\"folder\\": \\"x\\"}"}</tool_call>')
    assert parsed.calls == [ToolCall(name="cd", arguments={"folder": "x"})]


def test_plain_text_is_not_a_call():
    for text in ["Done! The file was moved.", "[see above]", "", "I used [1, 2] as input"]:
        parsed = parse_tool_calls(text)
        assert not parsed.attempted, text


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("<tool_call>{name: ls}</tool_call>", "parse/bad_json"),
        ('<tool_call>{"arguments": {}}</tool_call>', "parse/bad_shape"),
        ('<tool_call>{"name": "ls", "arguments": [1]}</tool_call>', "parse/bad_shape"),
        ('<tool_call>{"name": "cd", "arguments": "{oops"}</tool_call>', "parse/bad_json"),
        ('<tool_call>{"name": "ls", "arguments": {}}', "parse/unclosed_tag"),
        ('<tool_call>"just a string"</tool_call>', "parse/bad_shape"),
    ],
)
def test_malformed_calls_are_counted_errors(text, code):
    parsed = parse_tool_calls(text)
    assert parsed.attempted and not parsed.calls
    assert [c for c, _ in parsed.errors] == [code]


def test_good_and_bad_blocks_mix():
    text = ('<tool_call>{"name": "ls", "arguments": {}}</tool_call>'
            "<tool_call>{broken</tool_call>")
    parsed = parse_tool_calls(text)
    assert [c.name for c in parsed.calls] == ["ls"]
    assert [c for c, _ in parsed.errors] == ["parse/bad_json"]


def test_python_calls_keyword_and_positional():
    assert parse_python_call("cd(folder='document')").kwargs == {"folder": "document"}
    call = parse_python_call("sort('final_report.pdf')")
    assert call.name == "sort" and call.args == ("final_report.pdf",) and call.kwargs == {}
    nested = parse_python_call("f(a=[1, {'b': (2, None)}], c=-1.5, d=True)")
    assert nested.kwargs == {"a": [1, {"b": (2, None)}], "c": -1.5, "d": True}


@pytest.mark.parametrize(
    "source",
    [
        "cd(folder=__import__('os').getcwd())",
        "os.system('ls')",
        "cd(folder=open('/etc/passwd').read())",
        "cd(**{'folder': 'x'})",
        "(lambda: 1)()",
        "cd(folder='a') or exit()",
        "cd(folder=x)",
        "not a call at all",
        "cd(folder='a'); import os",
        "getattr(cd, '__globals__')",  # `cd` is a name, not a literal
    ],
)
def test_non_literal_python_calls_are_refused(source):
    with pytest.raises(CallSyntaxError):
        parse_python_call(source)
