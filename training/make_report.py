"""Regenerate the tables in docs/REPORT.md and the slide deck from `weights/reports/*.json`.

    python -m training.make_report            # rewrite docs/REPORT.md's generated blocks and docs/slides.pptx
    python -m training.make_report --check    # exit 1 if the committed report is stale

REPORT.md is prose written by people with generated blocks between `<!-- BEGIN:name -->` and
`<!-- END:name -->` markers; only the blocks are rewritten, so the numbers always come from the reports.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from core import settings
from training.report_tables import BLOCKS, ReportInputs

DOCS = settings.PROJECT_ROOT / "docs"
_BLOCK = re.compile(r"(<!-- BEGIN:(\w+) -->)(.*?)(<!-- END:\2 -->)", re.S)


def render_blocks(text: str, inp: ReportInputs) -> str:
    """Replace every marked block's body with its freshly generated content."""
    def fill(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in BLOCKS:
            raise KeyError(f"docs block {name!r} has no generator (known: {', '.join(BLOCKS)})")
        return m.group(1) + "\n" + BLOCKS[name](inp).strip() + "\n" + m.group(4)

    return _BLOCK.sub(fill, text)


def slide_texts(inp: ReportInputs) -> list[tuple[str, str]]:
    """(title, body) per slide, from the same generated blocks as the report."""
    def strip_md(s: str) -> str:
        return s.replace("**", "").replace("`", "").replace("_", " ")

    slides = [("EmoLens: offline facial-emotion analysis",
               "Detect faces, classify 7 expressions, measure how well it works - all on one machine.\n"
               "Numbers on these slides are generated from weights/reports/*.json by training/make_report.py.")]
    for title, name in (("Emotion classifier", "classifier"), ("Per-class metrics (PrivateTest)", "per_class"),
                        ("GPU candidates and ensembles (PublicTest)", "ensemble_selection"),
                        ("Architecture comparison (one recipe)", "experiments"), ("Face detectors", "detection"),
                        ("Fairness audit", "fairness"), ("Landmarks (helen_test)", "landmarks"),
                        ("Classifier speed", "classifier_speed"), ("Live speed", "live"), ("Batch throughput", "batch")):
        slides.append((title, strip_md(BLOCKS[name](inp))))
    slides.append(("Limits and responsible use",
                   "An expression is not a feeling. No decisions about individuals. Audit on your own population.\n"
                   "Images stay on the machine; nothing is stored unless the user saves it."))
    return slides


def write_slides(inp: ReportInputs, path: Path) -> None:
    """A plain 16:9 deck; tables become monospaced text so every figure stays legible."""
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    prs.slide_width, prs.slide_height = Inches(13.333), Inches(7.5)
    for title, body in slide_texts(inp):
        slide = prs.slides.add_slide(prs.slide_layouts[5])
        slide.shapes.title.text = title
        box = slide.shapes.add_textbox(Inches(0.5), Inches(1.4), Inches(12.3), Inches(5.8))
        frame = box.text_frame
        frame.word_wrap = True
        for i, line in enumerate(body.splitlines()):
            para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            para.text = line
            para.font.size = Pt(11 if line.startswith("|") else 14)
            if line.startswith("|"):
                para.font.name = "Courier New"
    prs.core_properties.title = "EmoLens"
    prs.save(str(path))


def read_slide_texts(path: Path) -> list[tuple[str, str]]:
    from pptx import Presentation

    out = []
    for slide in Presentation(str(path)).slides:
        title = slide.shapes.title.text if slide.shapes.title is not None else ""
        body = "\n".join(p.text for s in slide.shapes if s.has_text_frame and s != slide.shapes.title
                         for p in s.text_frame.paragraphs)
        out.append((title, body))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if docs/REPORT.md or the slides are stale")
    ap.add_argument("--report", default=str(DOCS / "REPORT.md"))
    ap.add_argument("--slides", default=str(DOCS / "slides.pptx"))
    args = ap.parse_args(argv)
    inp = ReportInputs.load(settings.get().weights_dir)
    report = Path(args.report)
    current = report.read_text()
    fresh = render_blocks(current, inp)
    if args.check:
        stale = []
        if fresh != current:
            stale.append(str(report))
        slides = Path(args.slides)
        if not slides.exists() or read_slide_texts(slides) != slide_texts(inp):
            stale.append(str(slides))
        if stale:
            print("stale: " + ", ".join(stale) + " - run `python -m training.make_report`", file=sys.stderr)
            return 1
        print("docs are up to date with weights/reports")
        return 0
    report.write_text(fresh)
    write_slides(inp, Path(args.slides))
    print(f"wrote {report} and {args.slides}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
