"""Load and validate the two seed sets (SFT examples and judge triplets) from JSONL, Parquet or a folder
written by `datasets.Dataset.save_to_disk`.

The row layouts each set accepts, and what they map to, are in core/seed_formats.py (docs/seed-data.md).
Every row is checked on load. By default the first bad row raises InputError naming the file, the line
(1-based; the row number for Parquet and datasets folders) and the field, so that nothing half-valid
reaches training. With `SeedRules.drop_invalid` bad rows (duplicates included) are set aside instead,
each with its reason, so that a large public file can be used as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, TypeVar

from alma.core.errors import InputError
from alma.core.seed_formats import BadRow, JudgeExample, SeedRules, SftExample, _text, judge_row, sft_row

T = TypeVar("T")

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class Reject:
    """A row set aside by drop_invalid: where, why, and the row as read."""

    line: int | None
    field: str | None
    reason: str  # the short kind it is counted under ("empty", "duplicate", ...)
    error: str  # the one-line error it would have raised
    row: Any  # the decoded row; the line's text where it is not JSON
    text: str | None = None  # the line as in the file (JSONL)

    @property
    def key(self) -> str:
        """What drops are counted by: the field (list indices folded) and the reason."""
        if self.field is None:
            return self.reason
        return f"field '{_INDEX.sub('[*]', self.field)}': {self.reason}"


@dataclass
class SeedSet:
    """A validated seed file: its examples, and what reading it found."""

    path: str
    file_format: str  # JSONL, Parquet or datasets folder
    examples: list = field(default_factory=list)
    rows: int = 0  # rows read, kept or dropped
    layouts: Counter = field(default_factory=Counter)  # layout -> rows kept
    fields: Counter = field(default_factory=Counter)  # top-level field -> rows holding it
    ignored: Counter = field(default_factory=Counter)  # field read past -> rows kept (SFT)
    rejects: list[Reject] = field(default_factory=list)

    def drops(self) -> Counter:
        return Counter(r.key for r in self.rejects)

    def drop_text(self) -> str:
        """'37 dropped (field 'value': empty: 30, duplicate: 7)', or 'none dropped'."""
        if not self.rejects:
            return "none dropped"
        reasons = ", ".join(f"{key}: {n}" for key, n in self.drops().most_common())
        return f"{len(self.rejects)} dropped ({reasons})"


def bundled(name: str) -> Path:
    """Path of a file shipped in alma/seeds (the default seed sets, rubric, eval prompts)."""
    return Path(str(resources.files("alma").joinpath("seeds", name)))


def file_fingerprint(path: Path) -> str:
    """sha256 of a seed file's bytes; of a datasets folder, of its .arrow files' names and bytes (its state.json
    holds a random fingerprint: saving the same rows again must not look like other data)."""
    if path.is_dir():
        digest = hashlib.sha256()
        for part in sorted(path.rglob("*.arrow")):
            digest.update(f"{part.relative_to(path).as_posix()}\0{file_fingerprint(part)}\n".encode())
        return digest.hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_format(path: Path) -> str:
    return "datasets folder" if path.is_dir() else "Parquet" if path.suffix == ".parquet" else "JSONL"


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line, row) from a seed or prompt file, raising InputError at the first unreadable row."""
    for line, row, _ in _read(path):
        if isinstance(row, BadRow):
            raise row
        yield line, row


def read_unique(path: str | Path, parse: Callable[[Any, tuple[str, int]], T],
                keys: Callable[[T], Iterable[tuple[str | None, Hashable]]]) -> list[T]:
    """Every row of a prompt file (JSONL, Parquet or a datasets folder) parsed by `parse(row, where)`, in file
    order. Each parsed row names its keys as (field, value); a value an earlier row had is an InputError at
    this line naming the earlier one ("duplicate of line 3", or "the same id as line 3" when the key is a
    field), since a repeated prompt would count twice in every rate. An empty file is an error too."""
    path = Path(path)
    out: list[T] = []
    seen: dict[tuple[str | None, Hashable], int] = {}
    for line, raw in _rows(path):
        item = parse(raw, (str(path), line))
        found = list(keys(item))
        for key in found:
            if key in seen:
                name = key[0]
                what = f"the same {name} as line {seen[key]}" if name else f"duplicate of line {seen[key]}"
                raise InputError(str(path), line, name, what)
        seen.update((key, line) for key in found)
        out.append(item)
    if not out:
        raise InputError(str(path), None, None, "no rows")
    return out


def _read(path: Path, keep_nulls: bool = True) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line, row, text) from a JSONL file, a Parquet file or a datasets folder. A line that is not
    a JSON value comes as a BadRow, with its text; a file that cannot be read at all raises InputError.
    `keep_nulls=False` leaves out a table row's null fields: a table has every column in every row, so
    a null is how it stores a field the row does not have."""
    p = str(path)
    if path.is_dir():
        tables = _dataset_folder(path)
    elif not path.is_file():
        raise InputError(p, None, None, "file not found")
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            tables = [pq.read_table(path)]
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise InputError(p, None, None, f"not a readable Parquet file ({e})") from None
    elif path.suffix in JSONL_SUFFIXES:
        yield from _jsonl(path)
        return
    else:
        raise InputError(p, None, None, "unsupported file type (use .jsonl, .parquet or a datasets.save_to_disk "
                         "folder)")
    number = 0
    for table in tables:
        for row in table.to_pylist():
            number += 1
            if not keep_nulls:
                row = {key: value for key, value in row.items() if value is not None}
            yield number, row, None


def _jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    p = str(path)
    # Split on "\n" alone: JSON strings may hold U+2028 and the other breaks str.splitlines() also cuts at.
    for number, chunk in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield number, BadRow((p, number), None, "not valid UTF-8 text", "not UTF-8"), \
                chunk.decode("utf-8", errors="replace")
            continue
        if not text.strip():
            continue
        try:
            yield number, json.loads(text), text
        except json.JSONDecodeError as e:
            yield number, BadRow((p, number), None, f"invalid JSON ({e.msg} at column {e.colno})", "invalid JSON"), text
        except RecursionError:
            yield number, BadRow((p, number), None, "nested too deeply to read (lists or objects inside each other "
                                 "past Python's recursion limit)", "nested too deeply"), text
        except ValueError as e:  # e.g. an integer of more digits than Python converts
            yield number, BadRow((p, number), None, f"invalid JSON ({e})", "invalid JSON"), text


def _dataset_folder(path: Path) -> list:
    """The Arrow tables of a `Dataset.save_to_disk` folder, in shard order (read with pyarrow's IPC reader)."""
    import pyarrow as pa

    p = str(path)
    if (path / "dataset_dict.json").is_file():
        splits = sorted(d.name for d in path.iterdir() if (d / "state.json").is_file())
        raise InputError(p, None, None, f"a DatasetDict folder holds several splits ({', '.join(splits)}): name one, "
                         f"e.g. {path / (splits[0] if splits else 'train')}")
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        files = [path / entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(p, None, None, "not a datasets.save_to_disk folder (it needs a readable state.json "
                         "listing its .arrow files)") from None
    tables = []
    for file in files:
        try:
            with pa.memory_map(str(file)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        except Exception as e:  # pyarrow raises several types for a missing or corrupt shard
            raise InputError(str(file), None, None, f"not a readable Arrow file ({e})") from None
    return tables


def _load(path: str | Path, parse: Callable, key: Callable, rules: SeedRules) -> SeedSet:
    """Parse every row; a bad or repeated row raises InputError, or is set aside with drop_invalid.
    `parse(row, where)` gives (layout, examples, fields read past); `key` says when two examples are one."""
    path = Path(path)
    out = SeedSet(str(path), file_format(path))
    seen: dict = {}
    for line, row, text in _read(path, keep_nulls=False):
        out.rows += 1
        where = (str(path), line)
        if isinstance(row, dict):
            out.fields.update(str(k) for k in row)
        try:
            if isinstance(row, BadRow):
                raise row
            layout, examples, ignored = parse(row, where)
            keys = [key(e) for e in examples]
            for i, k in enumerate(keys):
                if k in seen or k in keys[:i]:
                    raise BadRow(where, None, f"duplicate of line {seen.get(k, line)}", "duplicate")
        except BadRow as e:
            if not rules.drop_invalid:
                raise
            out.rejects.append(Reject(line, e.field, e.reason, str(e), text if isinstance(row, BadRow) else row, text))
            continue
        seen.update((k, line) for k in keys)
        out.examples.extend(examples)
        out.layouts[layout] += 1
        out.ignored.update(ignored)
    if not out.examples:
        if out.rejects:
            raise InputError(str(path), None, None, f"no valid rows: {out.drop_text()}")
        raise InputError(str(path), None, None, "no rows")
    return out


def _sft_key(ex: SftExample) -> tuple:
    return tuple((m["role"], m["content"]) for m in ex.prompt), ex.response


def read_sft(path: str | Path, rules: SeedRules = SeedRules()) -> SeedSet:
    """The SFT seed file with what reading it found (layouts, fields, dropped rows). Duplicates are bad rows:
    they would silently reweight training."""
    def parse(row: Any, where: tuple[str, int]):
        layout, example, ignored = sft_row(row, where)
        return layout, [example], ignored

    return _load(path, parse, _sft_key, rules)


def read_judge(path: str | Path, rules: SeedRules = SeedRules()) -> SeedSet:
    """The judge seed file as triplets (prompt, response, integer score 0..10), ratings mapped by `rules`."""
    def parse(row: Any, where: tuple[str, int]):
        layout, examples = judge_row(row, where, rules)
        return layout, examples, ()

    return _load(path, parse, lambda ex: ex, rules)


def load_sft(path: str | Path, rules: SeedRules = SeedRules()) -> list[SftExample]:
    """Validated SFT seed examples, in file order."""
    return read_sft(path, rules).examples


def load_judge(path: str | Path, rules: SeedRules = SeedRules()) -> list[JudgeExample]:
    """Validated judge triplets (prompt, response, integer score 0..10), in file order."""
    return read_judge(path, rules).examples
