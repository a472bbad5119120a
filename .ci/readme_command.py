"""Print the shell command that follows `<!-- NAME -->` in README.md (the first fenced bash
block after the marker). `.ci/run` runs the test command this way; tests/test_docs.py checks that
both commands exist and name only files of the repository."""

import sys
from pathlib import Path


def readme_command(name: str, readme: Path) -> str:
    lines = readme.read_text(encoding="utf-8").splitlines()
    marker = f"<!-- {name} -->"
    start = lines.index(marker)
    if lines[start + 1].strip() != "```bash":
        raise SystemExit(f"README.md: no ```bash block right after {marker}")
    end = lines.index("```", start + 2)
    body = [line for line in lines[start + 2:end] if line.strip()]
    if len(body) != 1:
        raise SystemExit(f"README.md: the block after {marker} must hold exactly one command line")
    return body[0]


if __name__ == "__main__":
    print(readme_command(sys.argv[1], Path(__file__).resolve().parent.parent / "README.md"))
