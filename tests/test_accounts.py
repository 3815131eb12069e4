def test_open_registration_logs_the_member_in(visitor, open_registration):
    b = visitor()
    b.register("River", "river@example.org")
    page = b.get("/account")
    assert page.status_code == 200
    assert "River" in page.text
