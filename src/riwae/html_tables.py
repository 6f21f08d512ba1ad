"""Tables as small self-contained HTML pages, which the Snakemake report shows inline; made
from the same tables the pipeline writes as CSV and markdown."""

from html import escape

STYLE = """
body { font-family: sans-serif; font-size: 14px; color: #222; margin: 1em; }
h1 { font-size: 17px; } h2 { font-size: 15px; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 0.4em 0 0.8em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f2f2f2; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
p { max-width: 60em; }
"""


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n<h1>{escape(title)}</h1>\n{body}</body></html>\n"
    )


def html_table(header: list[str], rows: list[list[str]], aligns: list[str]) -> str:
    def row(cells, tag):
        return (
            "<tr>"
            + "".join(
                f'<{tag} style="text-align:{align}">{escape(cell)}</{tag}>'
                for cell, align in zip(cells, aligns, strict=True)
            )
            + "</tr>\n"
        )

    return "<table>\n" + row(header, "th") + "".join(row(r, "td") for r in rows) + "</table>\n"


ALIGN = {(False, True): "right", (True, True): "center"}


def markdown_table(lines: list[str]) -> str:
    """A pipe table (header, alignment row such as ``|---:|:---:|``, rows) as HTML."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    aligns = [ALIGN.get((a.startswith(":"), a.endswith(":")), "left") for a in rows[1]]
    return html_table(rows[0], rows[2:], aligns)


def markdown_page(markdown: str, title: str) -> str:
    """The markdown the pipeline writes (``#`` headings, pipe tables, paragraphs) as a page;
    a level-1 heading in the markdown gives way to ``title``."""
    body = ""
    for block in markdown.strip().split("\n\n"):
        lines = block.strip().splitlines()
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            if level > 1:
                body += f"<h{level}>{escape(lines[0].lstrip('#').strip())}</h{level}>\n"
            lines = lines[1:]
        if not lines:
            continue
        if lines[0].startswith("|"):
            body += markdown_table(lines)
        else:
            body += f"<p>{escape(' '.join(lines))}</p>\n"
    return page(title, body)


def frame_page(frame, title: str) -> str:
    """A pandas DataFrame as a page: numbers to six significant digits, right-aligned."""

    def cell(value):
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    numeric = [frame[column].dtype.kind in "iuf" for column in frame]
    rows = [[cell(value) for value in row] for row in frame.itertuples(index=False)]
    aligns = ["right" if n else "left" for n in numeric]
    return page(title, html_table([str(c) for c in frame.columns], rows, aligns))
