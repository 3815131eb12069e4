"""Printable flyers for noticeboards: a page to print, and the same flyer as a PDF."""
from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from node.flyer import MEETINGS_ON_FLYER, Flyer, Paper, build_flyer
from node.web.public_meetings import next_meetings, shown_event, shown_group
from node.web.templating import render


async def _group_flyer(request: Request) -> Flyer:
    group = await shown_group(request, request.path_params["slug"])
    meetings = await next_meetings(request.state.db, group=group, limit=MEETINGS_ON_FLYER)
    return build_flyer(group, meetings, f"{request.state.config.public_url}/groups/{group.slug}")


async def _event_flyer(request: Request) -> Flyer:
    event, group = await shown_event(request, request.path_params["id"])
    meetings = await next_meetings(request.state.db, group=group, event=event,
                                   limit=MEETINGS_ON_FLYER)
    return build_flyer(group, meetings, f"{request.state.config.public_url}/events/{event.id}",
                       event=event)


async def _page(request: Request, flyer: Flyer, back: str) -> Response:
    from node.qr import qr_svg  # segno: loaded when the first flyer is asked for

    paper = Paper.named(request.query_params.get("paper"))
    return await render(request, "flyer.html", {
        "flyer": flyer, "qr": qr_svg(flyer.url), "paper": paper, "back": back,
    })


async def _pdf(request: Request, flyer: Flyer, name: str) -> Response:
    from node.flyer_pdf import flyer_pdf  # fpdf2 and its fonts (~25 MB): on first use

    paper = Paper.named(request.query_params.get("paper"))
    body = await run_in_threadpool(flyer_pdf, flyer, paper)  # tens of ms of layout
    filename = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{filename}-flyer-{paper}.pdf"',
    })


async def group_flyer(request: Request) -> Response:
    flyer = await _group_flyer(request)
    return await _page(request, flyer, f"/groups/{request.path_params['slug']}")


async def event_flyer(request: Request) -> Response:
    flyer = await _event_flyer(request)
    return await _page(request, flyer, f"/events/{request.path_params['id']}")


async def group_flyer_pdf(request: Request) -> Response:
    flyer = await _group_flyer(request)
    return await _pdf(request, flyer, request.path_params["slug"])


async def event_flyer_pdf(request: Request) -> Response:
    flyer = await _event_flyer(request)
    return await _pdf(request, flyer, f"meeting-{request.path_params['id']}")
