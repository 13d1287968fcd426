"""One request for a storefront page: several placements, no item twice."""

from __future__ import annotations

import pytest

from tests.serving.kit import AsgiClient, Reply, get, ids, run

pytestmark = pytest.mark.integration


def _placement_ids(reply: Reply, name: str) -> list[str]:
    return [i["item_id"] for i in reply.json["placements"][name]["items"]]


@pytest.mark.parametrize("user", ["u1", "someone-new"])
def test_a_page_answers_each_placement_without_repeating_items(filled: str, user: str) -> None:
    async def body(client: AsgiClient) -> list[Reply]:
        page = await client.get(f"/v1/users/{user}/page?placements=session,homepage,trending"
                                f"&k=3")
        session = await client.get(f"/v1/users/{user}/session-recommendations?k=3")
        shown = ",".join(_placement_ids(page, "session"))
        homepage = await client.get(f"/v1/users/{user}/recommendations?k=3"
                                    + (f"&exclude={shown}" if shown else ""))
        return [page, session, homepage]

    page, session, homepage = run(filled, body)
    assert page.status == 200, page.json
    assert list(page.json["placements"]) == ["session", "homepage", "trending"]
    every = [i for name in page.json["placements"] for i in _placement_ids(page, name)]
    assert every and len(every) == len(set(every))  # no item in two placements
    # the first placement is what its own endpoint answers; the next ones exclude what came
    # before them, and are otherwise the same answers
    assert _placement_ids(page, "session") == ids(session)
    assert _placement_ids(page, "homepage") == ids(homepage)
    for name, doc in page.json["placements"].items():
        assert doc["rec_id"] and doc["variant"], name
    assert page.json["page_id"]


def test_a_page_names_a_bad_placement(filled: str) -> None:
    (bad,) = get(filled, "/v1/users/u1/page?placements=homepage,cart")
    assert bad.status == 422
    assert bad.json["error"]["parameter"] == "placements"
    assert bad.json["error"]["value"] == "homepage,cart"
