"""The documentation: README stays short and links every page, links resolve, and the generated
configuration reference is current. Fast: no Ray, no models."""

import re
from pathlib import Path

from alma.config import REFERENCE_COMMAND, config_reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 200
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _links(path: Path) -> list[str]:
    """Markdown link targets in a file, code blocks left out (a `[x](y)` there is not a link)."""
    return LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("#")


def test_configuration_reference_is_current():
    page = DOCS / "configuration.md"
    expected = config_reference()
    assert page.is_file(), f"docs/configuration.md is missing: run `{REFERENCE_COMMAND} > docs/configuration.md`"
    assert page.read_text(encoding="utf-8") == expected, (
        f"docs/configuration.md is stale (the config's fields changed): regenerate it with "
        f"`{REFERENCE_COMMAND} > docs/configuration.md`")


def test_reference_covers_every_field():
    """The generated text names every leaf field by its dotted key, with its help text."""
    from alma.config import AlmaConfig
    from pydantic import BaseModel

    text = config_reference()

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            assert f"| `{key}` |" in text, f"{key} is not in the reference"
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, f"{key}.")
            else:
                first_words = " ".join(field.description.split()[:3]).replace("<", "&lt;").replace(">", "&gt;")
                assert first_words in text, f"{key}: its help text is not in the reference"
    walk(AlmaConfig, "")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, at most {README_MAX_LINES}: move the detail into a docs/ page")


def test_readme_links_every_docs_page():
    assert _pages(), "no docs/*.md pages found"
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in _links(ROOT / "README.md") if _relative(t)}
    missing = [p.name for p in _pages() if p.resolve() not in linked]
    assert not missing, f"README.md does not link docs page(s): {', '.join(missing)}"


def test_relative_links_resolve():
    broken = []
    for path in [ROOT / "README.md", *_pages()]:
        for target in _links(path):
            if not _relative(target):
                continue
            file = target.split("#", 1)[0].split("?", 1)[0]
            if file and not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_link_checks_can_fail(tmp_path):
    """The link extraction the checks above rely on finds links, skips code blocks, and tells relative from not."""
    page = tmp_path / "p.md"
    page.write_text("see [a](a.md#x) and [web](https://x.org)\n```\n[not](in-code.md)\n```\n[b](../b.md)\n")
    assert _links(page) == ["a.md#x", "https://x.org", "../b.md"]
    assert [t for t in _links(page) if _relative(t)] == ["a.md#x", "../b.md"]


def test_cli_prints_the_reference(capsys):
    from alma.cli import main

    assert main(["config", "--reference"]) == 0
    assert capsys.readouterr().out == config_reference()
    assert main(["config", "--reference", "--preset", "tiny"]) == 2  # refused, not ignored
    assert "drop --preset" in capsys.readouterr().err
