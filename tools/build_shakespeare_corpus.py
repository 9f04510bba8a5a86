"""Rebuild the embedded Shakespeare corpus (maintainers only).

The 42 works (Project Gutenberg texts as packaged by the Open Shakespeare project, MIT / public domain) are
joined in file-name order, separated by three newlines, and written xz-compressed to
``train/assets/shakespeare.txt.xz``. Users never need this script: the compressed corpus is committed.

    python tools/build_shakespeare_corpus.py /path/to/shakespeare_folder
"""
from __future__ import annotations

import argparse
import lzma
from pathlib import Path

SEPARATOR = "\n\n\n"
TARGET = Path(__file__).resolve().parent.parent / "train" / "assets" / "shakespeare.txt.xz"


def build(source: Path) -> str:
    files = sorted(source.glob("*_gut.txt"))
    if len(files) != 42:
        raise SystemExit(f"expected 42 *_gut.txt files in {source}, found {len(files)}")
    return SEPARATOR.join(f.read_text(encoding="utf-8").strip("\n") for f in files) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding the 42 *_gut.txt files")
    text = build(parser.parse_args().source)
    TARGET.write_bytes(lzma.compress(text.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME))
    print(f"wrote {TARGET} ({len(text):,} characters)")


if __name__ == "__main__":
    main()
