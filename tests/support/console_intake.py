"""intake as the console's unit tests need it, without NATS: `console.login` and `people.whoami` for made-up people,
and logging in through the console's own form."""

from __future__ import annotations

import re

from httpx import Response
from starlette.testclient import TestClient

from apps.console.client import Person
from shared.contracts.intake_rpc import CONSOLE_LOGIN, ConsoleLogin, ConsoleLoginRequest
from shared.contracts.rpc import ErrorCode, Role, ServiceError


class FakeIntake:
    """The people in `roles` (a person id and its roles): each one's console password is `<person id> password`."""

    def __init__(self, roles: dict[str, set[Role]]) -> None:
        self.roles = roles

    async def call(self, endpoint: object, request: ConsoleLoginRequest, *, timeout: float = 5) -> ConsoleLogin:
        assert endpoint is CONSOLE_LOGIN
        if request.person_id not in self.roles or request.password != f"{request.person_id} password":
            raise ServiceError(ErrorCode.REFUSED, "wrong person id, password or authenticator code")
        return ConsoleLogin(person_id=request.person_id, roles=sorted(self.roles[request.person_id]), one_time=False)

    async def whoami(self, person_id: str) -> Person | None:
        roles = self.roles.get(person_id)
        return None if roles is None else Person(person_id, frozenset(roles))


def log_in(browser: TestClient, person_id: str, password: str) -> Response:
    """Log in from the log-in page as a new visitor (a browser without the console's cookie); the answer, unfollowed."""
    browser.cookies.clear()
    page = browser.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return browser.post("/login", data={"csrf_token": found.group(1), "person_id": person_id, "password": password},
                        follow_redirects=False)
