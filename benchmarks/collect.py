"""Collect the sections written by each benchmark (benchmarks/results/*.md) into BENCHMARKS.md.

A section's notes measured by hand (a before/after of one change, dated in their text) are kept in
benchmarks/notes/<name>.md and follow the section: a benchmark's re-run rewrites its results file, never its notes."""

from __future__ import annotations

from pathlib import Path

ORDER = ["store_load", "spatial_index", "bim_import", "flood", "traffic", "crowd", "access", "viewer"]
HEAD = """# Benchmarks

Each engine and index has a script under `benchmarks/` that runs our code and
the tool a user would pick instead on the same input in the same run, and
writes its section below (`make bench` runs them all, then this collector).
Benchmarks are not timed tests: the figures are what the scripts printed on
the machine and date they name. The machine is the project's 2-core, 24 GiB
`python-svc` VM; where other work shared the cores during a run the section
says so, and the ratios (both tools measured in the same run) are the figures
to read.
"""


def main() -> None:
    here = Path(__file__).parent
    parts = {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted((here / "results").glob("*.md"))}
    for name in parts:
        notes = here / "notes" / f"{name}.md"
        if notes.exists():
            parts[name] += "\n\n" + notes.read_text(encoding="utf-8").strip()
    names = [n for n in ORDER if n in parts] + sorted(set(parts) - set(ORDER))
    text = HEAD + "\n" + "\n\n".join(parts[n] for n in names) + "\n"
    (here.parent / "BENCHMARKS.md").write_text(text, encoding="utf-8")
    print(f"BENCHMARKS.md: {len(names)} section(s): {', '.join(names)}")


if __name__ == "__main__":
    main()
