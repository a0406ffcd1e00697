"""Each list row's HTML, rendered once per row and selection state and kept with the row.

A page of 200 rows spent most of its time in the row template (a re-open with a study selected: about 20 ms
of 25). The presenter's rows are built once per list and minute (:func:`app.web.presenter.build_study_list_page`
keeps them in the list's index), so the HTML of a row depends only on the row itself, whether it is selected
(in the viewer), the viewer settings (``frameable``) and the launch: :func:`row_html` keeps it in the row's own
``rendered`` map under that key, so it lives and dies with the row (no shared cache to bound or invalidate).
Rendered by the ``study_row`` macro of ``templates/_study_row.html`` (Jinja autoescape, as every page).
"""

from __future__ import annotations

from flask import current_app
from markupsafe import Markup

from ..config import ViewerSettings
from .presenter import StudyRow

ROW_TEMPLATE = "_study_row.html"


def row_html(row: StudyRow, selected: bool, viewer: ViewerSettings, launch_id: str) -> Markup:
    """The ``<li>`` of ``row`` (with its year heading, when it has one) for launch ``launch_id``; ``selected``:
    the row is highlighted and ticked. Kept in ``row.rendered`` per ``(selected, viewer.frameable, launch_id)``."""
    key = (bool(selected), viewer.frameable, launch_id)
    html = row.rendered.get(key)
    if html is None:
        macro = current_app.jinja_env.get_template(ROW_TEMPLATE).module.study_row
        html = Markup(macro(row, bool(selected), viewer, launch_id))
        row.rendered[key] = html
    return html
