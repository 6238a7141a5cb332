"""The API describes itself: an accurate OpenAPI schema, and docs pages that work offline."""

from __future__ import annotations

import httpx

from tests.api.conftest import LiveApi


def test_the_schema_types_every_endpoint_and_names_the_bearer_scheme(live_api: LiveApi) -> None:
    schema = httpx.get(live_api.url + "/openapi.json").json()
    paths = schema["paths"]
    for path in ("/generate", "/tasks/{task_id}/status", "/tasks/{task_id}/stream",
                 "/v1/models", "/v1/chat/completions", "/v1/completions"):  # fmt: skip
        assert path in paths, path
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    chat = paths["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ChatCompletionRequest"
    )
    answer = chat["responses"]["200"]["content"]
    assert answer["application/json"]["schema"]["$ref"].endswith("ChatCompletion")
    assert "text/event-stream" in answer
    assert "/health" in paths and "security" not in paths["/health"]["get"]


def test_the_docs_page_loads_its_scripts_from_the_api_itself(live_api: LiveApi) -> None:
    page = httpx.get(live_api.url + "/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text  # nothing fetched from the internet
    script = next(part.split('"')[0] for part in page.text.split('src="')[1:]
                  if "swagger-ui-bundle.js" in part)  # fmt: skip
    bundle = httpx.get(live_api.url + script)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
