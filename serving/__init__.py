"""The HTTP server: a bare ASGI app (served by granian) that reads Redis and answers JSON.

Modules, one concept each:

* :mod:`serving.app`: the ASGI application, its lifespan, ``create_app`` and ``recs serve``;
* :mod:`serving.routes`: the endpoints (thin handlers and their Redis round trips);
* :mod:`serving.answers`: pure answer building (decayed scores, reasons, freshness, rendering);
* :mod:`serving.router`: path templates with ``{param}`` segments;
* :mod:`serving.params`: query and path validation (422s);
* :mod:`serving.responses`: the response value and the error body;
* :mod:`serving.cache`: the LRU behind degraded answers.

Every data endpoint answers::

    {"items": [{"item_id", "score", "source", "reason", "title"?, "category"?, "price"?}, ...],
     "source": "trending" | "similar" | "bought_together" | "session",
     "freshness": {"as_of_ms": oldest event time used, "newest_ms": newest, "age_ms": now - as_of},
     "degraded": false,
     "fallback"?: "no_session" | "no_candidates" | "no_neighbours" | "redis_unavailable"}

and every error ``{"error": {"code", "message", ...}}``.
"""
