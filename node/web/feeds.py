from starlette.exceptions import HTTPException


async def _todo(request):
    raise HTTPException(501)

group_calendar = node_calendar = atom = _todo
