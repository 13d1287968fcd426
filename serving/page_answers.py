"""A storefront page in one request: several placements answered together, no item twice.

``GET /v1/users/{user_id}/page?placements=session,homepage,trending&k=8`` answers each placement
named, in the order given, as its own endpoint would (the same pipeline, rules, explanations,
``rec_id`` and impression per placement), except that every placement also excludes what the
placements before it answered: a new visitor no longer sees the same trending items in "Because
you viewed", "Recommended for you" and "Trending". The other options (``exclude``, ``category``,
``context``, ``explain``) apply to every placement. The answer::

    {"page_id": "...", "placements": {"session": {...}, "homepage": {...}, "trending": {...}}}

Each placement's answer goes through the answer cache (:mod:`serving.answer_cache`) with the
exclusions in its key, so a polling page costs a cache check per placement while nothing
changed. The order is the precedence: put the placement that matters most first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from serving.handlers import Draft, Options, new_rec_id, ok
from serving.params import entity_id, invalid
from serving.request import Request
from serving.responses import Response
from serving.router import Router

if TYPE_CHECKING:
    from serving.routes import Handlers

Handler = Callable[[Request], Awaitable[Response]]
PAGE_PLACEMENTS: Final = ("session", "homepage", "trending")
DEFAULT_PLACEMENTS: Final = PAGE_PLACEMENTS


def page_placements(raw: str | None) -> tuple[str, ...]:
    """The ``placements`` parameter: distinct names of :data:`PAGE_PLACEMENTS`, in order.

    >>> page_placements("homepage,session"), page_placements(None)
    (('homepage', 'session'), ('session', 'homepage', 'trending'))
    >>> page_placements("homepage,cart")
    Traceback (most recent call last):
    ...
    serving.responses.ApiError: placements must be 1 to 3 distinct names of session, homepage, \
trending, comma-separated, got 'homepage,cart'
    """
    if raw is None:
        return DEFAULT_PLACEMENTS
    names = tuple(n.strip() for n in raw.split(","))
    if not names or len(set(names)) != len(names) or \
            any(n not in PAGE_PLACEMENTS for n in names):
        raise invalid("placements", raw, f"1 to {len(PAGE_PLACEMENTS)} distinct names of "
                      f"{', '.join(PAGE_PLACEMENTS)}, comma-separated")
    return names


def add_page_answer_route(router: Router[Handler], h: Handlers) -> None:
    async def page(req: Request) -> Response:
        user = entity_id("user_id", req.params["user_id"])
        names = page_placements(req.query.value("placements"))
        base = Options.of(req, user)
        now = h.now_ms()
        shown: set[str] = set()
        answers: dict[str, Any] = {}
        for name in names:
            opts = Options(base.k, base.exclude | shown, base.category, base.context,
                           base.explain, base.user)
            ids: list[str] = []
            answers[name] = await h.answer_doc(name, opts, _builder(h, name, user), now,
                                               shown=ids)
            shown.update(ids)
        return ok({"page_id": new_rec_id(), "placements": answers})

    router.add("GET", "/v1/users/{user_id}/page", page)


def _builder(h: Handlers, name: str, user: str) -> Callable[[Options, int], Awaitable[Draft]]:
    async def build(o: Options, now: int) -> Draft:
        if name == "homepage":
            return await h._homepage_draft(o, now, user)
        if name == "session":
            return await h._session_draft(o, now, user)
        return await h._trending_draft(o, now, "trending", global_if_missing=False)
    return build
