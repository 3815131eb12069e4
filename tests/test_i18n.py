"""Languages: complete catalogues, no untranslated text in templates, and the
language each visitor gets, through the real app."""
from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from node.domain import NodeSettings, RegistrationMode
from node.storage.settings import save_settings
from tests.helpers import group_form, meeting_form

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
TRANSLATED = ("de", "es")
# Text a template may show as it is: the software's name and the zone of UTC times.
ALLOWED_WORDS = {"Grassroots", "UTC"}


def source_messages() -> set[str | tuple[str, ...]]:
    """Every message the sources mark for translation, extracted as pybabel does."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    found: set[str | tuple[str, ...]] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map):
        found.add(message if isinstance(message, str) else tuple(message[:2]))
    return found


@pytest.fixture(scope="module")
def extracted() -> set[str | tuple[str, ...]]:
    return source_messages()


def catalogue(language: str):
    with (ROOT / "locales" / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale=language)


def test_sources_mark_messages_for_translation(extracted):
    assert "Find a group" in extracted
    assert "Enter a valid email address, like name@example.org." in extracted  # forms.py
    assert "Step-free access" in extracted  # N_() in domain.py


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_no_translation_is_stale(language, extracted):
    translations = catalogue(language)
    have = {m.id if isinstance(m.id, str) else tuple(m.id[:2]): m
            for m in translations if m.id}
    missing = sorted(str(m) for m in extracted if m not in have)
    untranslated = sorted(str(k) for k, m in have.items()
                          if k in extracted and (m.fuzzy or not all(
                              m.string if isinstance(m.string, tuple) else (m.string,))))
    # (Entries marked obsolete, "#~", are not among a catalogue's messages.)
    stale = sorted(str(k) for k in have if k not in extracted)
    assert not missing, f"{language}: not in the catalogue: {missing}"
    assert not untranslated, f"{language}: untranslated or fuzzy: {untranslated}"
    assert not stale, f"{language}: no longer in the sources: {stale}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_their_placeholders(language):
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalogue(language).check()]
    assert not problems


def visible_text(template: str) -> str:
    """What a template shows besides Jinja output: tags, comments and expressions removed."""
    text = re.sub(r"\{#.*?#\}", " ", template, flags=re.S)
    text = re.sub(r"\{%.*?%\}", " ", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}", " ", text, flags=re.S)
    text = re.sub(r"<(style|script)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]*>", " ", text)
    return html.unescape(text)


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_show_no_text_outside_gettext(path):
    words = re.findall(r"[^\W\d_][\w'’-]*", visible_text(path.read_text()))
    assert [w for w in words if w not in ALLOWED_WORDS] == []


def test_visible_text_check_finds_plain_text():
    assert re.search(r"[^\W\d_]", visible_text('<p class="x">Hello {{ name }}</p>'))
    assert not re.search(r"[^\W\d_]", visible_text('<p class="x">{{ _("Hello") }} ·</p>'))


# The language each visitor gets -----------------------------------------------------

def test_accept_language_gives_a_german_page(visitor):
    page = visitor().get("/register",
                         headers={"Accept-Language": "fr;q=0.9, de-AT;q=0.8, en;q=0.5"})
    assert '<html lang="de">' in page.text
    assert "<h1>Konto anlegen</h1>" in page.text
    assert "Vary" in page.headers and "Accept-Language" in page.headers["Vary"]


def test_english_is_shown_without_a_preference(visitor):
    page = visitor().get("/register")
    assert '<html lang="en">' in page.text and "<h1>Create an account</h1>" in page.text


def test_the_pickers_cookie_wins_over_accept_language(visitor):
    b = visitor()
    r = b.post("/language", {"lang": "es"}, page="/groups")
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = b.get("/groups", headers={"Accept-Language": "de"})
    assert '<html lang="es">' in page.text and "Buscar un grupo" in page.text


def test_the_picker_goes_back_to_the_page_it_was_used_on(visitor):
    b = visitor()
    r = b.request("POST", "/language", data={"lang": "de", "csrf_token": b.token("/groups")},
                  headers={"Referer": "http://testserver/groups?q=grief"},
                  follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/groups?q=grief"


def test_the_picker_needs_the_csrf_token(visitor):
    r = visitor().request("POST", "/language", data={"lang": "de"}, follow_redirects=False)
    assert r.status_code == 403


def test_the_nodes_default_language_applies_without_cookie_or_accept_language(visitor, run_db):
    run_db(lambda db: save_settings(db, NodeSettings(default_language="es")))
    page = visitor().get("/groups")
    assert '<html lang="es">' in page.text and "Buscar un grupo" in page.text
    # A browser that asks for none of the node's languages gets the default too.
    asked = visitor().get("/groups", headers={"Accept-Language": "fr, it;q=0.5"})
    assert '<html lang="es">' in asked.text


def test_admin_settings_offer_the_three_languages(admin):
    page = admin.get("/admin/settings").text
    for code, name in (("en", "English"), ("de", "Deutsch"), ("es", "español")):
        assert f'<option value="{code}" lang="{code}"' in page and name in page


def test_a_form_error_appears_in_spanish(visitor, run_db):
    run_db(lambda db: save_settings(db, NodeSettings(registration=RegistrationMode.OPEN)))
    b = visitor()
    r = b.post("/register", {"display_name": "Ana", "email": "not-an-email",
                             "password": "correct horse battery"}, page="/register")
    assert r.status_code == 400
    b.cookies.set("lang", "es")
    r = b.post("/register", {"display_name": "Ana", "email": "not-an-email",
                             "password": "correct horse battery"}, page="/register")
    assert r.status_code == 400
    assert "Escribe un correo electrónico válido, como nombre@example.org." in r.text


def test_a_meeting_time_is_shown_in_german_with_its_zone(visitor, run_db):
    run_db(lambda db: save_settings(db, NodeSettings(registration=RegistrationMode.OPEN)))
    b = visitor()
    b.register("Fay", "fay@example.org")
    assert b.post("/groups/new", group_form(languages="de, en, es, xx-Unknown"),
                  page="/groups/new").status_code == 303
    r = b.post("/groups/tuesday-grief-circle/events/new",
               meeting_form(starts_at="2031-03-04T19:00", timezone="Europe/Berlin"),
               page="/groups/tuesday-grief-circle/events/new")
    assert r.status_code == 303, r.text
    b.cookies.set("lang", "de")
    page = b.get(r.headers["location"]).text
    assert "Di., 4. März 2031, 19:00" in page and "Europe/Berlin" in page
    assert "bis <time" in page and ">20:30</time>" in page


def test_a_groups_languages_show_as_names_in_the_visitors_language(visitor, run_db):
    run_db(lambda db: save_settings(db, NodeSettings(registration=RegistrationMode.OPEN)))
    b = visitor()
    b.register("Fay", "fay@example.org")
    assert b.post("/groups/new", group_form(languages="de, en, es, xx-Unknown"),
                  page="/groups/new").status_code == 303
    english = b.get("/groups/tuesday-grief-circle").text
    assert "German, English, Spanish, xx-Unknown" in english
    b.cookies.set("lang", "es")
    spanish = b.get("/groups/tuesday-grief-circle").text
    assert "alemán, inglés, español, xx-Unknown" in spanish
    assert "Acceso sin escalones" in spanish and "Gratis" in spanish  # labels translated


def test_dates_are_formatted_per_language():
    from node import i18n

    moment = datetime(2026, 3, 3, 19, 0)
    expected = {"en": "Tue 3 Mar 2026, 19:00", "de": "Di., 3. März 2026, 19:00",
                "es": "mar, 3 de marzo de 2026, 19:00"}
    for language, shown in expected.items():
        i18n.use_language(language)
        try:
            assert i18n.format_when(moment) == shown
        finally:
            i18n.use_language("en")
