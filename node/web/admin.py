from starlette.exceptions import HTTPException


async def _todo(request):
    raise HTTPException(501)

settings = accounts = _todo
