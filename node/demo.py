async def seed_demo(db):
    return False
