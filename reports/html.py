"""Self-contained HTML reports: one styled page per study or comparison, opening offline.

A page carries its own style sheet, its figures as inline PNG (``data:`` URIs), the provenance of the
results (commits, machine, threads, packages) and every cell that did not finish, with its error. No
script, no external file: it can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d8dce5; padding-bottom: 0.2rem; }
p.meta { color: #5b6375; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e3e6ec; }
th { background: #f3f5f9; text-align: left; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
table.cutbench-summary td:nth-child(n+3), td.num { text-align: right; white-space: nowrap; }
tr.regression td { background: #fde8e8; } tr.improvement td { background: #e7f6ec; }
tr.better td { background: #e6effb; } tr.inconclusive td { background: #fff8e1; }
tr.new td, tr.removed td { color: #5b6375; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; margin: 0.8rem 0; }
.ok { background: #e7f6ec; border-left: 4px solid #2f9e55; padding: 0.5rem 0.8rem; margin: 0.8rem 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #e3e6ec; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; white-space: pre-wrap; }
code { font-size: 0.9em; }
"""


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """A complete HTML document: charset, viewport, the style sheet, a heading and the sections."""
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=\"meta\">{html.escape(subtitle)} · written {made} by cutbench</p>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def section(heading: str, body: str) -> str:
    return f"<section>\n<h2>{html.escape(heading)}</h2>\n{body}\n</section>"


def figure(png: Path, caption: str) -> str:
    """A PNG file inlined as a ``data:`` URI, so the page needs no other file."""
    data = base64.b64encode(Path(png).read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def notes(lines: Sequence[str | None]) -> str:
    """Warnings as highlighted paragraphs (empty entries are skipped)."""
    return "".join(f'<p class="warning">{html.escape(line)}</p>' for line in lines if line)


def failures(frame: pd.DataFrame) -> str:
    """Every cell that did not finish, with its status and error; or a line saying all did."""
    bad = frame[frame.status != "ok"]
    if bad.empty:
        return f'<p class="ok">All {len(frame)} cells finished ok.</p>'
    rows = "".join(f"<tr><td>{html.escape(str(r.dataset))}</td><td>{html.escape(str(r.method))}</td>"
                   f"<td class=\"num\">{r.seed}</td><td>{html.escape(str(r.status))}</td>"
                   f"<td><pre>{html.escape(str(r.error))}</pre></td></tr>" for r in bad.itertuples())
    return (f'<p class="warning">{len(bad)} of {len(frame)} cells did not finish; they are counted in the ok '
            "column above and never averaged as zeros.</p>"
            f"<table><thead><tr><th>dataset</th><th>configuration</th><th>seed</th><th>status</th><th>error</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")


def provenance(records: Sequence[dict]) -> str:
    """Where the results were made: commits, machine, threads and packages of the given records."""
    commits = sorted({f"{(r.get('provenance') or {}).get('git', {}).get('commit') or 'unknown'}"
                      f"{' (uncommitted changes)' if (r.get('provenance') or {}).get('git', {}).get('dirty') else ''}"
                      for r in records})
    latest = max(records, key=lambda r: (r.get("provenance") or {}).get("timestamp") or "")
    prov = latest.get("provenance") or {}
    machine = {key: prov.get(key) for key in ("hostname", "platform", "cpu", "cores", "cuda_available", "gpu_name",
                                              "driver", "python")}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in [("commits", ", ".join(commits)), *machine.items(),
                                ("threads", json.dumps(prov.get("threads"))),
                                ("packages", json.dumps(prov.get("packages")))] if v is not None)
    return f"<table>{rows}</table>"


__all__ = ["STYLE", "failures", "figure", "notes", "page", "provenance", "section"]
