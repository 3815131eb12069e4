from starlette.exceptions import HTTPException


async def _todo(request):
    raise HTTPException(501)

create = show = edit = change_occurrence = cancel = rsvp = _todo
