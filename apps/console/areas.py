"""A page area: one module in apps/console/pages/ with its router, the roles it is for, and its templates in
templates/<name>/. The app mounts every area listed in `apps.console.pages.AREAS` under /<name>, with its guard on
every route, and lists in the navigation the areas the person logged in may use.

    AREA = area("alerts", "Safeguarding alerts", {Role.DSL})

    @AREA.router.get("")                      # /alerts, for safeguarding leads only
    async def page(request: Request, me: Me) -> Response: ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import APIRouter, Depends

from apps.console.auth import FRAGMENT, STREAM, TEXT, Needs
from shared.contracts.rpc import Role

__all__ = ["FRAGMENT", "NOT_PAGES", "STREAM", "TEXT", "Area", "area"]  # an area's routes are tagged with these
NOT_PAGES = frozenset({FRAGMENT, STREAM, TEXT})


@dataclass(frozen=True)
class Area:
    name: str
    title: str
    guard: Needs
    router: APIRouter

    @property
    def href(self) -> str:
        return f"/{self.name}"

    @property
    def roles(self) -> frozenset[Role]:
        return self.guard.roles


def area(name: str, title: str, roles: Iterable[Role]) -> Area:
    """An area for `roles`: every route added to `.router` is guarded by `.guard`; list it in
    `apps.console.pages.AREAS`."""
    needs = Needs(frozenset(roles))
    return Area(name, title, needs, APIRouter(prefix=f"/{name}", dependencies=[Depends(needs)]))
