"""`generate --turns N` (synth/conversations.py): conversations of N user turns as `messages`, written by a
teacher that sees whole seed conversations; novelty on whole conversations; a re-run pays for nothing."""

from __future__ import annotations

import json

import pytest

from seedloop.core.tables import read_table
from synth.conversations import conversation_text, user_message
from tests.conftest import run_cli

KEY = {"OPENAI_API_KEY": "sk-test"}


def chat_seeds(path):
    rows = [{"messages": [{"role": "system", "content": "You are Nova, the bank's support assistant."},
                          {"role": "user", "content": f"My card {i} was declined at a shop, why?"},
                          {"role": "assistant", "content": "It can be the limit or a block; check Cards."},
                          {"role": "user", "content": f"The limit is fine. Is card {i} blocked?"},
                          {"role": "assistant", "content": "Open Cards and look for the red lock icon."}]}
            for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def roles(messages) -> list[str]:
    return [m["role"] for m in messages]


def test_three_turn_conversations_from_chat_seeds(fake_llm, tmp_path):
    seeds = chat_seeds(tmp_path / "chat.jsonl")
    args = ["generate", "--seeds", seeds, "--n", 6, "--turns", 3, "--out", tmp_path / "conv.parquet",
            "--teacher", "openai:fake", "--base-url", fake_llm.url, "--cache", tmp_path / "c.sqlite",
            "--drops", tmp_path / "drops.parquet"]
    res = run_cli(*args, env=KEY)
    assert res.returncode == 0, res.stderr[-2000:]
    df = read_table(tmp_path / "conv.parquet")
    assert df.height == 6 and df["id"].n_unique() == 6
    for row in df.to_dicts():
        messages = row["messages"]
        assert roles(messages) == ["user", "assistant"] * 3
        assert row["instruction"] == messages[-2]["content"] and row["output"] == messages[-1]["content"]
        # the fake's user turn began with "User:" and ran on into "Assistant: Sure": both cut away
        assert all(not m["content"].startswith("User:") and "Assistant:" not in m["content"] for m in messages)
        assert "conversation/user_turn@" in row["prompt"]
    # the teacher was shown whole seed conversations, all their turns, when it wrote a user turn
    user_turn_prompts = [s.body for s in fake_llm.seen if "Write only the user's next message" in
                         s.body["messages"][-1]["content"]]
    assert user_turn_prompts and all("Is card" in b["messages"][-1]["content"] and "red lock" in
                                     b["messages"][-1]["content"] for b in user_turn_prompts)
    # each assistant turn was asked with the whole conversation so far as chat messages
    answered = [b for b in (s.body for s in fake_llm.seen) if len(b["messages"]) >= 3
                and b["messages"][-1]["role"] == "user"]
    assert answered and all(roles(b["messages"])[:2] == ["user", "assistant"] for b in answered)
    # a re-run pays for nothing twice and writes the same conversations (it may send requests of slots
    # past the ones the output needed, which the first run left unsent when it stopped)
    sent = len(fake_llm.seen)
    assert run_cli(*args, env=KEY).returncode == 0
    bodies = [json.dumps(s.body, sort_keys=True) for s in fake_llm.seen]
    assert len(set(bodies)) == len(bodies) and len(bodies) < 1.2 * sent
    assert read_table(tmp_path / "conv.parquet").equals(df)


def test_one_turn_is_the_single_turn_run(fake_llm, tmp_path):
    base = ["generate", "--seeds", chat_seeds(tmp_path / "chat.jsonl"), "--n", 4, "--teacher", "openai:fake",
            "--base-url", fake_llm.url, "--cache", tmp_path / "c.sqlite"]
    assert run_cli(*base, "--out", tmp_path / "a.parquet", env=KEY).returncode == 0
    assert run_cli(*base, "--out", tmp_path / "b.parquet", "--turns", 1, env=KEY).returncode == 0
    bodies = [json.dumps(s.body, sort_keys=True) for s in fake_llm.seen]
    assert len(set(bodies)) == len(bodies)   # the same requests: answered from the cache
    assert read_table(tmp_path / "a.parquet").drop("messages").equals(read_table(tmp_path / "b.parquet")
                                                                     .drop("messages"))


def test_near_duplicate_conversations_are_dropped_in_slot_order():
    import asyncio

    from synth.scheduler import OrderedSlots

    slots = OrderedSlots(want=1, window=2, seed=0, known_texts=[],
                         lanes={"conversation": ["hello there\nhow can I help you today"]})

    async def run():
        from synth.scheduler import SlotContext

        ctx0, ctx1 = SlotContext(slots, 0, []), SlotContext(slots, 1, [])
        second = asyncio.create_task(ctx1.admit(["a brand new talk about fees\nfees are listed in the app"],
                                                lane="conversation"))
        await asyncio.sleep(0.01)
        assert not second.done()   # slot 1 waits for slot 0's turn in this lane
        first = await ctx0.admit(["hello there\nhow can I help you today please",
                                  "a brand new talk about fees\nfees are listed in the app"], lane="conversation")
        await ctx0.skip_turns()    # slot 0 takes (empty) turns in the other lanes
        return first, await second

    first, second = asyncio.run(run())
    assert [a.accepted for a in first] == [False, True] and [a.accepted for a in second] == [False]
    assert second[0].similar_to == "a brand new talk about fees\nfees are listed in the app"


def test_user_message_is_cut_from_a_reply():
    assert user_message("User: Can I get a refund?\nAssistant: Yes.") == "Can I get a refund?"
    assert user_message('  "Why was I charged twice?"  ') == "Why was I charged twice?"
    assert conversation_text([{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                              {"role": "assistant", "content": "A"}]) == "U\nA"


@pytest.mark.slow
def test_two_turn_conversations_from_the_real_local_teacher(tmp_path):
    """SmolLM2 on llama.cpp writes the user's follow-ups and the answers."""
    from tests.conftest import EXAMPLE_SEEDS

    res = run_cli("generate", "--seeds", EXAMPLE_SEEDS, "--n", 2, "--turns", 2, "--teacher", "local",
                  "--out", tmp_path / "conv.jsonl", "--cache", tmp_path / "c.sqlite", timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    df = read_table(tmp_path / "conv.jsonl")
    assert df.height == 2
    for messages in df["messages"].to_list():
        assert roles(messages) == ["user", "assistant", "user", "assistant"]
        assert all(m["content"].strip() for m in messages)
