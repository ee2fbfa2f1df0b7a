"""Instruction-following rules (core/ifeval.py): every kind with hand-written answers that meet it and that
miss it, the prompt file's checks (one-line errors naming file, line and field), and the bundled set."""

import json

import pytest

from alma.core.errors import InputError
from alma.core.ifeval import (FAMILIES, KINDS, Constraint, describe, grade, load_ifeval_prompts, paragraphs,
                              parse_prompt, sentences, words)
from alma.core.prompts import normalize
from alma.core.eval_prompts import load_eval_rows
from alma.core.seeds import bundled, load_judge, load_sft

# kind, arguments, answers that meet it, answers that miss it
CASES = [
    ("words", {"relation": "at_most", "value": 5}, ["One two three four five.", "  Short.  "],
     ["One two three four five six.", "It's a well-known fact that cats nap a lot."]),
    ("words", {"relation": "at_least", "value": 4}, ["Don't stop the music now.", "We sold 1,000 units at 3.5 each."],
     ["Too short here.", ""]),
    ("words", {"relation": "exactly", "value": 3}, ["Red, green, blue."], ["Red green.", "Red green blue yellow."]),
    ("sentences", {"relation": "exactly", "value": 2},
     ["The sky is blue. It looks calm!", "Why? Because light scatters."],
     ["The sky is blue.", "One. Two. Three."]),
    ("sentences", {"relation": "at_most", "value": 1}, ["Light scatters in the air.", "It is 3.5 km away."],
     ["Light scatters. Blue wins."]),
    ("paragraphs", {"relation": "exactly", "value": 2}, ["The sea is wide.\n\nIt is also deep.", "A\nB\n\n  \nC"],
     ["The sea is wide. It is also deep.", "One.\n\nTwo.\n\nThree."]),
    ("bullets", {"relation": "exactly", "value": 3}, ["- water\n- tea\n- juice", "Drinks:\n* water\n* tea\n• juice"],
     ["- water\n- tea", "1. water\n2. tea\n3. juice", "-water\n-tea\n-juice", "**water** **tea** **juice**"]),
    ("bullets", {"relation": "at_least", "value": 2}, ["  - sand\n  - sun\n  - sea"], ["Only one:\n- towel"]),
    ("sections", {"marker": "Section", "relation": "exactly", "value": 2},
     ["Section 1\nSleep in.\nSection 2\nGo for a walk.", "## SECTION 1: rest\nSECTION 2 - play"],
     ["Section 1\nSleep in.", "Part 1\nSleep.\nPart 2\nWalk.", "Section one\nSection two"]),
    ("placeholders", {"relation": "at_least", "value": 2}, ["Dear [name], see you at [place].", "[a] [b] [c]"],
     ["Dear [name], see you soon.", "Dear [], see you at [ ]."]),
    ("postscript", {"marker": "P.S."}, ["Thank you for everything!\nP.S. I loved the book.",
                                        "Thanks.\n\n  P.S. Call me."],
     ["Thank you for everything! P.S. I loved the book.", "P.S. I loved the book.", "Thanks.\nP.S.",
      "Thanks.\np.s. see you"]),
    ("title", {}, ["<<Autumn Leaves>>\nRed and gold they fall.", "A poem: <<Rain>>"],
     ["Autumn Leaves\nRed and gold.", "<<>> empty", "<Autumn>", "<<  >>"]),
    ("json", {}, ['{"name": "Ada", "age": 36}', '["red", "green", "blue"]', '```json\n{"a": 1}\n```'],
     ['Here it is: {"name": "Ada"}', "{name: Ada}", '{"a": 1}\nHope this helps!', "```\n{'a': 1}\n```"]),
    ("quoted", {}, ['"Fresh bread every morning."', "  “Bake happy.”  "],
     ["Fresh bread every morning.", '"Fresh bread" every morning.', '"']),
    ("include_keywords", {"keywords": ["silver", "quiet night"]}, ["A SILVER moon on a Quiet  Night."],
     ["A silver moon.", "A silvery moon on a quiet night."]),
    ("forbidden_words", {"words": ["cute", "fluffy"]}, ["The cat is curious and cuter than a dog."],
     ["The cat is Cute.", "So fluffy!"]),
    ("keyword_frequency", {"keyword": "door", "relation": "at_least", "value": 3},
     ["The door creaked. A door slammed. Another DOOR opened."], ["The door creaked. The doors slammed."]),
    ("keyword_frequency", {"keyword": "sorry", "relation": "exactly", "value": 1}, ["I am sorry I was late."],
     ["I am late.", "Sorry, so sorry."]),
    ("lowercase", {}, ["hello neighbour, may i borrow your ladder?"], ["Hello neighbour.", "123 456"]),
    ("uppercase", {}, ["GO TEAM GO! WE WIN 3-0!"], ["GO team GO!", "!!!"]),
    ("no_commas", {}, ["Red gold and brown leaves fall."], ["Red, gold and brown.", "Red，gold"]),
    ("starts_with", {"phrase": "Dear friend"}, ["Dear friend, keep going.", "  dear   FRIEND\nkeep going"],
     ["Hi, dear friend.", "Dear friendship is rare."]),
    ("ends_with", {"phrase": "Is there anything else I can help with?"},
     ["Octopuses have three hearts. Is there anything else I can help with?",
      "Fun fact.\nis there anything else i can help with?  "],
     ["Is there anything else I can help with? Bye.", "Octopuses have three hearts.",
      "Is there anything else I can help with"]),
    ("ends_with", {"phrase": "good night"}, ["Stars shine, good night"], ["Stars shine, good night.", "xgood night"]),
]


@pytest.mark.parametrize("kind, args, good, bad", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_meets_and_misses(kind, args, good, bad):
    row = {"id": "t", "prompt": "p", "constraints": [{"kind": kind, **args}]}
    constraint = parse_prompt(row, ("f", 1)).constraints[0]
    for answer in good:
        assert constraint.check(answer), f"{kind} {args} should accept {answer!r}"
    for answer in bad:
        assert not constraint.check(answer), f"{kind} {args} should refuse {answer!r}"


def test_every_kind_is_tested_and_has_a_family():
    assert {c[0] for c in CASES} == set(KINDS) and len(KINDS) >= 12
    assert set(FAMILIES) == {k.family for k in KINDS.values()}


def test_counting_by_hand():
    assert words("It's 3.5 km, well-known; 1,000 people!") == ["It's", "3.5", "km", "well-known", "1,000", "people"]
    assert len(sentences('He said "stop." Then he left! Why?')) == 3
    assert len(sentences("A list:\n- first item\n- second item")) == 3, "a line break ends a sentence"
    assert paragraphs("one\n\n\n two\n \nthree\n") == ["one", "two", "three"]


def test_grade_and_describe():
    prompt = parse_prompt({"id": "x", "prompt": "p", "constraints": [
        {"kind": "words", "relation": "at_most", "value": 4}, {"kind": "no_commas"}, {"kind": "lowercase"}]}, ("f", 1))
    assert grade(prompt, "the sun rises") == [True, True, True]
    assert grade(prompt, "The sun, rising over hills") == [False, False, False]
    assert describe(prompt.constraints[0]) == "the answer has at_most 4 words"
    assert prompt.constraints[1].as_dict() == {"kind": "no_commas"} and prompt.constraints[2].family == "case"


@pytest.mark.parametrize("row, where", [
    ('["x"]', ":1: expected a JSON object"),
    ('{"prompt": "p", "constraints": []}', ":1: field 'id': expected a non-empty string"),
    ('{"id": "a", "prompt": " ", "constraints": []}', ":1: field 'prompt': expected a non-empty string"),
    ('{"id": "a", "prompt": "p", "constraints": []}', ":1: field 'constraints': expected a non-empty list"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "haiku"}]}', "field 'constraints[0].kind': unknown kind"),
    ('{"id": "a", "prompt": "p", "constraints": ["words"]}', "field 'constraints[0]': expected an object"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "words", "value": 3}]}',
     "field 'constraints[0].relation': missing"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "words", "relation": "about", "value": 3}]}',
     "field 'constraints[0].relation': expected one of at_least, at_most, exactly"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "no_commas"}, {"kind": "words", "relation": "at_most", '
     '"value": -1}]}', "field 'constraints[1].value': expected a whole number >= 0"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "json", "strict": true}]}',
     "field 'constraints[0].strict': not an argument of 'json'"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "include_keywords", "keywords": []}]}',
     "field 'constraints[0].keywords': expected a non-empty list"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "starts_with", "phrase": ""}]}',
     "field 'constraints[0].phrase': expected a non-empty string"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "lowercase"}, {"kind": "uppercase"}]}',
     "field 'constraints': cannot all be met: lowercase and uppercase"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "lowercase"}, {"kind": "postscript", "marker": "P.S."}]}',
     "cannot all be met: lowercase and the postscript marker 'P.S.'"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "json"}, {"kind": "title"}]}',
     "cannot all be met: json and title"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "quoted"}, {"kind": "ends_with", "phrase": "x"}]}',
     "cannot all be met: quoted and a start or end phrase"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "words", "relation": "at_least", "value": 50}, '
     '{"kind": "words", "relation": "at_most", "value": 40}]}', "cannot all be met: at least 50 and at most 40 words"),
    ('{"id": "a", "prompt": "p", "category": "x", "constraints": [{"kind": "json"}]}',
     "field 'category': unknown field"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "json"}]}\n{"id": "a", "prompt": "q", "constraints": '
     '[{"kind": "json"}]}', ":2: field 'id': the same id as line 1"),
    ('{"id": "a", "prompt": "p", "constraints": [{"kind": "json"}]}\n{"id": "b", "prompt": "p", "constraints": '
     '[{"kind": "json"}]}', ":2: field 'prompt': the same prompt as line 1"),
])
def test_bad_prompt_rows_are_one_line_errors(tmp_path, row, where):
    f = tmp_path / "if.jsonl"
    f.write_text(row + "\n")
    with pytest.raises(InputError) as e:
        load_ifeval_prompts(f)
    message = str(e.value)
    assert message.startswith(str(f)) and where in message and "\n" not in message


def test_the_bundled_prompt_set():
    prompts = load_ifeval_prompts(bundled("ifeval_prompts.jsonl"))
    assert 90 <= len(prompts) <= 120 and all(1 <= len(p.constraints) <= 3 for p in prompts)
    assert {c.family for p in prompts for c in p.constraints} == set(FAMILIES)
    assert {c.kind for p in prompts for c in p.constraints} == set(KINDS), "every kind is asked for"
    assert all(len(words(p.prompt)) <= 40 for p in prompts), "short tasks a small model can attempt"
    held_out = {normalize(r.prompt) for r in load_eval_rows(bundled("eval_prompts.jsonl"))}
    seeds = {normalize(e.user_prompt) for e in load_sft(bundled("sft.jsonl"))}
    seeds |= {normalize(e.prompt) for e in load_judge(bundled("judge.jsonl"))}
    assert not {normalize(p.prompt) for p in prompts} & (held_out | seeds), "no seed or held-out prompt"
    rows = [json.loads(line) for line in bundled("ifeval_prompts.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [p.id for p in prompts]


def test_a_constraint_is_checked_on_the_stripped_answer():
    assert Constraint("starts_with", {"phrase": "Why"}).check("\n  Why did the chicken cross the road?")
    assert Constraint("quoted").check('\n"Read more."\n')
