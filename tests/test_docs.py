"""The documentation holds together: a short README, every relative link and anchor resolves,
every experiment config is described in docs/configs.md and every config described there exists,
and CI runs the README's test command. Reads text only, trains nothing."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
CONFIGS_PAGE = ROOT / "docs" / "configs.md"
README_MAX_LINES = 150

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`]*`")
CONFIG_ROW = re.compile(r"^\| `(configs/[^`]+\.yaml)` \|")
CONFIG_PATH = re.compile(r"configs/[\w./-]+\.yaml")


def prose_lines(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks (a `# comment` in a bash block is no heading)."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        match = re.match(r"^#{1,6} (.+)$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """Link targets in prose (code spans and blocks excluded), without external URLs."""
    targets = []
    for line in prose_lines(path):
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if not re.match(r"^[a-z]+:", target):
                targets.append(target)
    return targets


def experiment_configs() -> set[str]:
    """Every experiment config; configs/published/ holds the papers' numbers as data, not runs."""
    return {str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml")
            if "published" not in p.relative_to(ROOT / "configs").parts}


def test_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; at most {README_MAX_LINES}"


def test_the_pages_exist_and_say_something():
    for page in PAGES:
        assert page.is_file(), f"missing documentation page {page.relative_to(ROOT)}"
        assert anchors(page), f"{page.relative_to(ROOT)} has no heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no file {file_part}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_pages_link_each_other():
    """A reader starting at the README reaches every page in one click."""
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    missing = [str(p.relative_to(ROOT)) for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


def test_every_experiment_config_is_described_and_every_described_config_exists():
    rows = {m.group(1) for line in prose_lines(CONFIGS_PAGE) if (m := CONFIG_ROW.match(line))}
    configs = experiment_configs()
    assert configs, "no experiment config found under configs/"
    assert not configs - rows, f"configs not described in docs/configs.md: {sorted(configs - rows)}"
    assert not rows - configs, f"docs/configs.md describes missing configs: {sorted(rows - configs)}"


def test_every_config_path_the_docs_name_exists():
    """Placeholders such as configs/<paper>/<table>.yaml are no paths and do not match."""
    missing = {(page.relative_to(ROOT), path) for page in PAGES
               for path in CONFIG_PATH.findall(page.read_text()) if not (ROOT / path).is_file()}
    assert not missing, f"named but absent: {sorted(map(str, missing))}"


def test_ci_runs_the_readmes_test_command():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert len(ci) == 1, f".ci/run should run one command, found {ci}"
    assert ci[0] in README.read_text().splitlines(), f"README.md does not give .ci/run's {ci[0]!r}"
