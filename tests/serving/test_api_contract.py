"""Property tests of the HTTP API against its own OpenAPI document (schemathesis), over HTTP
to the real server, with valid credentials (a server key, as a storefront backend calls): no
500s, every 4xx carries the error body, every answer has a documented status and content type
and, where it says so, matches its schema."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serving.kit import server_auth, serving_http

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 40


def test_api_conforms_to_its_openapi_document(filled: str, kafka: Any,
                                              fresh_topics: Any) -> None:
    (topic,) = fresh_topics("interactions")
    with serving_http(filled, KAFKA_BOOTSTRAP=kafka.bootstrap,
                      RECS_TOPIC_INTERACTIONS=topic) as port:
        base = f"http://127.0.0.1:{port}"
        auth = server_auth()
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json", headers=auth)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 11
        seen: dict[str, set[int]] = {}
        for op in operations:
            @given(case=op.as_strategy())
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                response = case.call(base_url=base, timeout=10, headers=auth)
                seen.setdefault(case.operation.label, set()).add(response.status_code)
                assert response.status_code < 500, (case.as_curl_command(), response.text)
                if 400 <= response.status_code < 500:
                    error = response.json()["error"]
                    assert error["code"] and error["message"], response.text
                case.validate_response(response, checks=[
                    not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance])

            check()
    # the generator reached the happy paths and the validation errors
    statuses = set().union(*seen.values())
    assert {200, 202, 422} <= statuses, seen
