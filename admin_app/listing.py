"""A list page at real size, the one way the portal's lists do it: the rows of one page, its filters and sort
as query arguments that every link keeps, and the pager (templates/portal/_pager.html).

    sort, direction = asked_sort(request.args, SORTS, "period", FIRST_DIRECTION)
    page = asked_page(request.args)                       # the page asked for: 1 when none or not a number
    pages = page_count(count, PAGE_SIZE)                  # at least 1
    Listing("invoices.index", rows, page, pages, count, sort, direction, args, FIRST_DIRECTION)

The database filters, sorts and pages (the views' queries); this module only reads what was asked and writes
the links back.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from flask import url_for

PAGE_SIZE = 50
DIRECTIONS = ("asc", "desc")


@dataclass(frozen=True)
class Listing:
    endpoint: str
    rows: list
    page: int
    pages: int
    count: int
    sort: str
    direction: str
    args: dict                 # the filters and sort as query arguments, for the links that keep them
    first_direction: Mapping[str, str] = field(default_factory=dict)   # a column's first order (else "asc")
    errors: dict = field(default_factory=dict)                         # filter → why its value was not used

    def url(self, **changes) -> str:
        arguments = {name: value for name, value in {**self.args, **changes}.items() if value not in (None, "")}
        return url_for(self.endpoint, **arguments)

    def sort_url(self, column: str) -> str:
        direction = self.first_direction.get(column, "asc")
        if column == self.sort:
            direction = "asc" if self.direction == "desc" else "desc"
        return self.url(sort=column, dir=direction, page=None)


def asked_sort(args: Mapping, sorts: Container[str], default: str, first_direction: Mapping[str, str]) \
        -> tuple[str, str]:
    """(column, direction) asked for in `args` (`sort`, `dir`); the default where either is not one we know."""
    sort = args.get("sort", default)
    sort = sort if sort in sorts else default
    direction = args.get("dir", first_direction.get(sort, "asc"))
    return sort, direction if direction in DIRECTIONS else "asc"


def asked_page(args: Mapping) -> int:
    """The page asked for in `args`: at least 1; 1 when it is not a number."""
    try:
        return max(1, int(args.get("page", "1")))
    except ValueError:
        return 1


def page_count(count: int, per_page: int = PAGE_SIZE) -> int:
    """How many pages `count` rows fill, `per_page` a page: at least 1."""
    return max(1, math.ceil(count / per_page))
