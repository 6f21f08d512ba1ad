"""Tables as HTML pages for the report, from the markdown and data frames the stages write."""

import pandas as pd

from riwae.html_tables import frame_page, markdown_page


def test_markdown_tables_headings_and_notes_become_html():
    markdown = (
        "# ignored title\n\n## case <a>\n\n| k | value | ok |\n|---:|---|:---:|\n"
        "| 1 | 2.5 ± 0.1 | yes |\n| 10 | x | NO |\n\nL_VAE[q] <= log p(x).\n"
    )
    page = markdown_page(markdown, "The title")
    assert "<h1>The title</h1>" in page and "ignored title" not in page
    assert "<h2>case &lt;a&gt;</h2>" in page
    assert '<th style="text-align:right">k</th>' in page
    assert '<td style="text-align:left">2.5 ± 0.1</td>' in page
    assert '<td style="text-align:center">NO</td>' in page
    assert page.count("<tr>") == 3
    assert "<p>L_VAE[q] &lt;= log p(x).</p>" in page


def test_data_frames_become_html_with_six_significant_digits():
    frame = pd.DataFrame({"model": ["a", "b"], "k": [1, 50], "ll": [-101.17123456, 4.4e-15]})
    page = frame_page(frame, "Models")
    assert '<td style="text-align:right">-101.171</td>' in page
    assert '<td style="text-align:right">4.4e-15</td>' in page
    assert '<td style="text-align:left">b</td>' in page
    assert '<th style="text-align:right">ll</th>' in page
