"""`logtap validate`: tool blocks in the right turns, and a toolResult's own content checked too."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from logtap.cli import cli
from logtap.converters.validate import check_record, rules_for

SV = "bedrock-conversation-2024"


def _record(*messages: dict[str, object]) -> dict[str, object]:
    return {"schemaVersion": SV, "messages": list(messages)}


USE = {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Oslo"}}}


def _result(*content: dict[str, object]) -> dict[str, object]:
    return {"toolResult": {"toolUseId": "t1", "content": list(content)}}


def test_tool_blocks_must_sit_in_their_own_turns() -> None:
    good = _record({"role": "user", "content": [{"text": "Weather?"}]}, {"role": "assistant", "content": [USE]},
                   {"role": "user", "content": [_result({"json": {"c": 3}})]},
                   {"role": "assistant", "content": [{"text": "3 degrees."}]})
    assert check_record(good) == []
    swapped = _record({"role": "user", "content": [USE]},
                      {"role": "assistant", "content": [_result({"text": "3"})]})
    problems = check_record(swapped)
    assert "messages[0].content[0]: toolUse blocks are only allowed in assistant turns" in problems
    assert "messages[1].content[0]: toolResult blocks are only allowed in user turns" in problems


def test_tool_result_content_is_checked_like_a_turn() -> None:
    rec = _record({"role": "user", "content": [{"text": "Weather?"}]}, {"role": "assistant", "content": [USE]},
                  {"role": "user", "content": [_result({"text": "User: 3"}, {"image": {
                      "format": "png", "source": {"bytes": "AAAA"}}}, {"cachePoint": {}})]},
                  {"role": "assistant", "content": [{"text": "3 degrees."}]})
    nova = check_record(rec, rules_for("amazon.nova-lite-v1:0:300k"))
    where = "messages[2].content[0]: toolResult content"
    assert any(p.startswith(f"{where}[0]: text contains 'User:'") for p in nova), nova
    assert any(p.startswith(f"{where}[1]: image source must be s3Location") for p in nova), nova
    assert any(p.startswith(f"{where}[2] must have exactly one of") for p in nova), nova
    shared = check_record(rec)
    assert not any("User:" in p for p in shared)  # reserved strings are Nova's rule only


def test_cli_names_the_line_of_a_misplaced_tool_block(tmp_path: Path) -> None:
    ok = _record({"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "yo"}]})
    bad = _record({"role": "user", "content": [USE]})
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ok) + "\n" + json.dumps(bad) + "\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: messages[0].content[0]: toolUse blocks are only allowed in assistant turns" in result.output
    assert f"{path}:1:" not in result.output
