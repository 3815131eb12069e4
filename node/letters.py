"""Mail as people read it: one template per kind, in the reader's language.

A template in ``templates/mail/`` is plain text: its first line is the subject,
then a blank line, then the body. The HTML part says the same words: the text
escaped, its paragraphs kept, and the web addresses on a line of their own made
links (the node's own links are always written that way). Nothing a member wrote
can add markup or a link that its text does not plainly show.
"""
from __future__ import annotations

import re
from html import escape
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from node import i18n
from node.mail import Attachment, OutgoingMail
from node.web.templating import TEMPLATES_DIR

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR / "mail"),
    autoescape=False,  # plain text; the HTML part is escaped as a whole
    undefined=StrictUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
    extensions=["jinja2.ext.i18n"],
)
i18n.install(_environment)
_LINK_LINE = re.compile(r"^https?://\S+$")


def _html(subject: str, body: str, language: str) -> str:
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", body.strip()):
        lines = []
        for line in paragraph.splitlines():
            safe = escape(line.strip())
            lines.append(f'<a href="{safe}">{safe}</a>' if _LINK_LINE.match(line.strip())
                         else safe)
        paragraphs.append(f"<p>{'<br>'.join(lines)}</p>")
    return (f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            f"<title>{escape(subject)}</title></head>"
            '<body style="font-family:sans-serif;line-height:1.5;max-width:40em">'
            f"{''.join(paragraphs)}</body></html>")


def compose(template: str, *, to: str, kind: str, language: str, context: dict[str, Any],
            account_id: int | None = None, unsubscribe_url: str | None = None,
            attachments: tuple[Attachment, ...] = ()) -> OutgoingMail:
    """The message ``templates/mail/{template}.txt`` makes with ``context``, in ``language``.

    ``unsubscribe_url`` is for every kind but account security, whose messages a
    member cannot turn off.
    """
    with i18n.speaking(language):
        rendered = _environment.get_template(f"{template}.txt").render(context)
        language = i18n.current_language()
    subject, _, body = rendered.partition("\n\n")
    subject = " ".join(subject.split())
    return OutgoingMail(to_address=to, kind=kind, subject=subject, text=body.strip() + "\n",
                        html=_html(subject, body, language), account_id=account_id,
                        attachments=attachments, unsubscribe_url=unsubscribe_url)
