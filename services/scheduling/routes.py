"""Journeys to a venue, planned borough by borough over a map of London, around the places a person must avoid.

The map joins two boroughs when a journey can go straight from one to the other: a shared land border, or a
Thames crossing (bridge or tunnel) between them. A route is the fewest-boroughs path from where a person sets
out to the venue's borough that enters none of the boroughs they must avoid (they may set out from one). Places
smaller than a borough (an estate, a neighbourhood, a postcode district) are not on this map: they rule out
venues in them, not routes through them (see constraints.venues_for).
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache

from shared.contracts.codes import LONDON_BOROUGHS, canonical_borough

_BORDERS: tuple[tuple[str, str], ...] = (
    ("Barking and Dagenham", "Havering"), ("Barking and Dagenham", "Newham"), ("Barking and Dagenham", "Redbridge"),
    ("Barnet", "Brent"), ("Barnet", "Camden"), ("Barnet", "Enfield"), ("Barnet", "Haringey"), ("Barnet", "Harrow"),
    ("Bexley", "Bromley"), ("Bexley", "Greenwich"),
    ("Brent", "Camden"), ("Brent", "Ealing"), ("Brent", "Hammersmith and Fulham"), ("Brent", "Harrow"),
    ("Brent", "Kensington and Chelsea"), ("Brent", "Westminster"),
    ("Bromley", "Croydon"), ("Bromley", "Greenwich"), ("Bromley", "Lambeth"), ("Bromley", "Lewisham"),
    ("Bromley", "Southwark"),
    ("Camden", "City of London"), ("Camden", "Haringey"), ("Camden", "Islington"), ("Camden", "Westminster"),
    ("City of London", "Hackney"), ("City of London", "Islington"), ("City of London", "Southwark"),
    ("City of London", "Tower Hamlets"), ("City of London", "Westminster"),
    ("Croydon", "Lambeth"), ("Croydon", "Merton"), ("Croydon", "Sutton"),
    ("Ealing", "Hammersmith and Fulham"), ("Ealing", "Harrow"), ("Ealing", "Hillingdon"), ("Ealing", "Hounslow"),
    ("Enfield", "Haringey"), ("Enfield", "Waltham Forest"),
    ("Greenwich", "Lewisham"), ("Greenwich", "Newham"), ("Greenwich", "Tower Hamlets"),
    ("Hackney", "Haringey"), ("Hackney", "Islington"), ("Hackney", "Newham"), ("Hackney", "Tower Hamlets"),
    ("Hackney", "Waltham Forest"),
    ("Hammersmith and Fulham", "Hounslow"), ("Hammersmith and Fulham", "Kensington and Chelsea"),
    ("Hammersmith and Fulham", "Richmond upon Thames"), ("Hammersmith and Fulham", "Wandsworth"),
    ("Haringey", "Islington"), ("Haringey", "Waltham Forest"),
    ("Harrow", "Hillingdon"),
    ("Havering", "Redbridge"),
    ("Hillingdon", "Hounslow"),
    ("Hounslow", "Richmond upon Thames"),
    ("Kensington and Chelsea", "Wandsworth"), ("Kensington and Chelsea", "Westminster"),
    ("Kingston upon Thames", "Merton"), ("Kingston upon Thames", "Richmond upon Thames"),
    ("Kingston upon Thames", "Sutton"), ("Kingston upon Thames", "Wandsworth"),
    ("Lambeth", "Merton"), ("Lambeth", "Southwark"), ("Lambeth", "Wandsworth"), ("Lambeth", "Westminster"),
    ("Lewisham", "Southwark"),
    ("Merton", "Sutton"), ("Merton", "Wandsworth"),
    ("Newham", "Redbridge"), ("Newham", "Tower Hamlets"), ("Newham", "Waltham Forest"),
    ("Redbridge", "Waltham Forest"),
    ("Richmond upon Thames", "Wandsworth"),
    ("Southwark", "Tower Hamlets"),
    ("Wandsworth", "Westminster"),
)


def _neighbours() -> dict[str, tuple[str, ...]]:
    found: dict[str, set[str]] = {b: set() for b in LONDON_BOROUGHS}
    for a, b in _BORDERS:
        found[a].add(b)
        found[b].add(a)
    return {b: tuple(sorted(n)) for b, n in found.items()}


NEIGHBOURS: dict[str, tuple[str, ...]] = _neighbours()  # each borough's neighbours, alphabetical
Route = tuple[str, ...]  # boroughs in travel order, from where the journey starts to the venue's borough


def boroughs_in(places: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The London boroughs among free-text place names, canonically spelled (other places are left out)."""
    return frozenset(b for p in places if (b := canonical_borough(p)) is not None)


@lru_cache(maxsize=8192)
def plan_route(origin: str, destination: str, avoid: frozenset[str]) -> Route | None:
    """The fewest-boroughs journey from `origin` to `destination` that enters no borough in `avoid` (canonical
    names; setting out from one is allowed). None when every journey crosses one, or a place is not a London
    borough. Ties go to the alphabetically first neighbour, so the same question always gets the same route."""
    start, goal = canonical_borough(origin), canonical_borough(destination)
    if start is None or goal is None or goal in avoid:
        return None
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            path = [here]
            while (step := came_from[path[-1]]) is not None:
                path.append(step)
            return tuple(reversed(path))
        for there in NEIGHBOURS[here]:
            if there not in came_from and there not in avoid:
                came_from[there] = here
                queue.append(there)
    return None


def describe(route: Route) -> str:
    """'Hackney → Islington → Camden'."""
    return " → ".join(route)
