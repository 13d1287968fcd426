"""The HTTP server: a bare ASGI app (served by granian) that reads Redis and answers JSON.

Modules, one concept each:

* :mod:`serving.app`: the ASGI application, its lifespan, ``create_app`` and ``recs serve``;
* :mod:`serving.routes`: the endpoints and their Redis round trips;
* :mod:`serving.handlers`: what they share: options, A/B assignment, finishing, impressions,
  degraded answers;
* :mod:`serving.pipeline`: pure candidate assembly (lists, context blend, cart), exploration,
  explanations (the homepage blend itself is :mod:`operators.blend`);
* :mod:`serving.models`: the learned models (FAISS item-vector index, ranker), refreshed from
  Redis by a background task (reading through :mod:`serving.model_source`);
  :mod:`serving.ranking`: the ranker's pass before the rules; :mod:`serving.vectors`: the FAISS
  index;
* :mod:`serving.rules`: re-ranking and business rules (``config/rules.toml``);
* :mod:`serving.experiments`: A/B experiments and assignment (``config/experiments.toml``);
* :mod:`serving.fetch`: Redis reads through the in-process cache, inside a time budget;
* :mod:`serving.ingest`, :mod:`serving.publish`: ``POST /v1/events`` and Kafka publishing;
* :mod:`serving.metrics`, :mod:`serving.openapi`, :mod:`serving.pages`: ``/metrics``,
  ``/openapi.json`` and ``/docs``, the storefront and widget;
* :mod:`serving.router`, :mod:`serving.params`, :mod:`serving.request`,
  :mod:`serving.responses`, :mod:`serving.answers`, :mod:`serving.cache`: routing, validation,
  the request and response values, scores and freshness, a small LRU.

Every recommendation endpoint answers::

    {"items": [{"item_id", "score", "source", "reason", "title"?, "category"?, "brand"?,
                "price"?, "rules"?, "sponsored"?, "explanation"? (explain=true)}, ...],
     "source": the first item's source,
     "freshness": {"as_of_ms": oldest event time used, "newest_ms": newest, "age_ms": now - as_of},
     "degraded": false, "rec_id": "...", "variant": "experiment/variant" | "default",
     "ranker": "warm" | "cold" | "absent" | "off",
     "fallback"?: "no_session" | "no_candidates" | "no_neighbours" | "redis_unavailable",
     "exploration"?: {"item_id", "slot", "propensity"}}

and every error ``{"error": {"code", "message", ...}}``. ``docs/api.md`` is the user's guide.
"""
