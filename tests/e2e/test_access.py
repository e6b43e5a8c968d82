"""Access by API key (SPEC §10) on the real stores: every role against every endpoint, allowed
and denied; a channel key speaking for another channel is 403 and appends nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from api.app import create_app
from hub.app import Hub
from hub.settings import Settings
from tests.conftest import pg_url
from tests.factories import raw_touchpoint

PROBLEM = "application/problem+json"
ROLES = ["agent", "dashboard", "auditor", "admin", "channel:phone", "channel:web"]
CUSTOMER = "{customer}"  # replaced by the id of a real customer of the store
NOBODY = str(uuid.UUID(int=7))  # a customer id no one has


def phone_touchpoint() -> dict[str, Any]:
    return raw_touchpoint(source={"channel": "phone", "id": f"call-{uuid.uuid4().hex[:10]}"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str]
    body: Any = None

    def call(self, client: TestClient, customer: str, headers: dict[str, str]) -> Any:
        body = self.body() if callable(self.body) else self.body
        return client.request(
            self.method, self.path.replace(CUSTOMER, customer), json=body, headers=headers
        )


def allow(*roles: str) -> frozenset[str]:
    return frozenset({"admin", *roles})


READERS = allow("agent", "dashboard")
ENDPOINTS = [
    Endpoint("POST", "/v1/touchpoints", allow("channel:phone"), phone_touchpoint),
    Endpoint("POST", "/v1/touchpoints/batch", allow("channel:phone"), lambda: [phone_touchpoint()]),
    Endpoint("POST", "/v1/touchpoints/check", allow("agent", "channel:phone"), phone_touchpoint),
    Endpoint("POST", "/v1/adapters/shop", allow("channel:web"), {}),
    Endpoint("POST", "/v1/adapters/telephony", allow("channel:phone"), {}),
    Endpoint("POST", "/v1/adapters/email", allow(), None),
    Endpoint("POST", "/v1/adapters/servicedesk", allow(), {}),
    Endpoint(
        "GET", "/v1/customers?email=li.wei@example.com", allow("agent", "dashboard", "auditor")
    ),
    Endpoint("GET", f"/v1/customers/{CUSTOMER}", READERS),
    Endpoint("GET", f"/v1/customers/{CUSTOMER}/timeline", READERS),
    Endpoint("GET", f"/v1/customers/{CUSTOMER}/open-items", READERS),
    Endpoint("GET", f"/v1/customers/{CUSTOMER}/claims", READERS),
    Endpoint("GET", f"/v1/customers/{CUSTOMER}/history", allow("auditor")),
    Endpoint("GET", f"/v1/customers/{CUSTOMER}/statements", allow("auditor")),
    Endpoint("GET", f"/v1/audit/verify?customer_id={CUSTOMER}", allow("auditor")),
    Endpoint("GET", "/v1/conflicts", allow("dashboard", "auditor")),
    Endpoint("GET", "/v1/open-items", allow("dashboard")),
    Endpoint("GET", "/v1/analytics/touchpoints", allow("dashboard")),
    Endpoint("GET", "/v1/analytics/service-levels", allow("dashboard")),
    Endpoint("GET", "/v1/projections", allow("dashboard")),
    Endpoint("GET", "/metrics", allow("dashboard")),
    Endpoint("POST", f"/v1/customers/{CUSTOMER}/merge", allow(), {"from": NOBODY}),
    Endpoint("POST", f"/v1/customers/{CUSTOMER}/unmerge", allow(), {"from": NOBODY}),
    Endpoint("POST", f"/v1/customers/{NOBODY}/erase", allow()),
    Endpoint(
        "GET",
        f"/v1/customers/{CUSTOMER}/feed.atom",
        allow("agent", "dashboard", "channel:phone", "channel:web"),
    ),
    Endpoint("GET", "/healthz", frozenset(ROLES)),
]
# Open on purpose: health, signing in and out, the API's documents, the redirect from `/` to
# the dashboard (which asks for a key) and the dashboard's stylesheet and script.
OPEN_PATHS = {
    "/healthz",
    "/login",
    "/logout",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/dashboard/static/{name}",
}


@dataclass
class Access:
    client: TestClient
    hub: Hub
    keys: dict[str, str]
    customer: str

    def head(self) -> int:
        return self.hub.recorder.max_notification_id() or 0


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def access(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Access]:
    """One store per module with a key of every role and one customer."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('access') / 'hub.db'}"
        env = Settings(database_url=url).eventsourcing_env()
    else:
        database = request.getfixturevalue("pg_database")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_url(database), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        env = Settings(database_url=pg_url(database), pool_size=4).eventsourcing_env()
        env["POSTGRES_SCHEMA"] = schema
    hub = Hub(env, key_cache_s=0.2)
    keys = {role: hub.keys.create(role, f"test {role}")[1] for role in ROLES}
    with TestClient(create_app(Settings(), hub=hub)) as client:
        first = client.post(
            "/v1/touchpoints", json=phone_touchpoint(), headers={"X-API-Key": keys["admin"]}
        )
        assert first.status_code == 201, first.text
        yield Access(client, hub, keys, first.json()["customer_id"])
    hub.close()
    if schema is not None:
        with psycopg.connect(pg_url(request.getfixturevalue("pg_database")), autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_role_is_admitted_exactly_where_the_table_allows(
    access: Access, endpoint: Endpoint, role: str
) -> None:
    response = endpoint.call(access.client, access.customer, bearer(access.keys[role]))
    if role in endpoint.allowed:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] in ("/problems/wrong-role", "/problems/wrong-channel")


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if e.path != "/healthz"], ids=lambda e: e.path
)
def test_request_without_a_key_is_401_problem(access: Access, endpoint: Endpoint) -> None:
    response = endpoint.call(access.client, access.customer, {})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "/problems/missing-key"


def api_routes(client: TestClient) -> list[Any]:
    """Every API route, those of included routers too (FastAPI keeps those out of
    `app.routes`, so walking that list alone found none of them)."""
    app: Any = client.app
    routes = [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, APIRoute)]
    assert len(routes) > 30
    return routes


def test_every_route_declares_who_may_call_it(access: Access) -> None:
    undeclared = []
    for route in api_routes(access.client):
        if route.path_format in OPEN_PATHS:
            continue
        checks = [d.call for d in route.dependant.dependencies]
        if not any(getattr(c, "__qualname__", "").startswith("Requires.") for c in checks):
            undeclared.append(route.path_format)
    assert undeclared == []


def test_every_api_route_is_in_the_role_matrix(access: Access) -> None:
    tested = {
        (e.method, e.path.split("?")[0].replace(CUSTOMER, "{customer_id}")) for e in ENDPOINTS
    }
    tested = {(m, p.replace(NOBODY, "{customer_id}")) for m, p in tested}
    routes = {
        (method, route.path_format)
        for route in api_routes(access.client)
        if route.path_format.startswith(("/v1/", "/metrics"))
        for method in route.methods
    }
    assert len(routes) > 20
    assert routes - tested == set()


def test_the_openapi_document_shows_the_key_on_every_guarded_operation(access: Access) -> None:
    spec = access.client.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {
        "HTTPBearer",
        "APIKeyHeader",
        "APIKeyCookie",
    }
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    operations = {
        (method, path): operation
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    }
    assert len(operations) > 20
    for (method, path), operation in operations.items():
        if path in OPEN_PATHS:
            assert "security" not in operation, path
        else:
            names = {name for requirement in operation["security"] for name in requirement}
            assert names == {"HTTPBearer", "APIKeyHeader", "APIKeyCookie"}, (method, path)


def test_channel_key_posting_another_channels_touchpoint_is_403_and_appends_nothing(
    access: Access,
) -> None:
    before = access.head()
    response = access.client.post(
        "/v1/touchpoints", json=phone_touchpoint(), headers=bearer(access.keys["channel:web"])
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/wrong-channel"
    assert "'phone'" in response.json()["detail"]
    assert access.head() == before


def test_batch_with_one_foreign_item_is_403_and_appends_nothing(access: Access) -> None:
    before = access.head()
    web_item = raw_touchpoint(source={"channel": "web", "id": f"form-{uuid.uuid4().hex[:8]}"})
    items = [phone_touchpoint(), phone_touchpoint(), web_item]
    response = access.client.post(
        "/v1/touchpoints/batch", json=items, headers=bearer(access.keys["channel:phone"])
    )
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/wrong-channel"
    assert access.head() == before


def test_channel_key_reads_its_own_result_by_posting_again(access: Access) -> None:
    raw = phone_touchpoint()
    key = bearer(access.keys["channel:phone"])
    first = access.client.post("/v1/touchpoints", json=raw, headers=key)
    again = access.client.post("/v1/touchpoints", json=raw, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "cookie"])
def test_key_is_accepted_as_bearer_header_or_cookie(access: Access, how: str) -> None:
    key = access.keys["dashboard"]
    if how == "cookie":
        access.client.cookies.set("hub_key", key)
        try:
            response = access.client.get("/v1/projections")
        finally:
            access.client.cookies.clear()
    else:
        headers = bearer(key) if how == "bearer" else {"X-API-Key": key}
        response = access.client.get("/v1/projections", headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("how", ["bearer", "x-api-key", "cookie"])
def test_plain_touchpoints_honour_each_form_of_key(access: Access, how: str) -> None:
    """The plain POST /v1/touchpoints reads the key from the raw headers (`api/fast.py`) once
    the key is cached: each form still admits its channel's key and refuses another's."""

    def post(role: str, channel: str) -> int:
        key = access.keys[role]
        raw = raw_touchpoint(source={"channel": channel, "id": uuid.uuid4().hex})
        if how == "cookie":
            access.client.cookies.set("hub_key", key)
            try:
                return access.client.post("/v1/touchpoints", json=raw).status_code
            finally:
                access.client.cookies.clear()
        headers = bearer(key) if how == "bearer" else {"X-API-Key": key}
        return access.client.post("/v1/touchpoints", json=raw, headers=headers).status_code

    # The first request of a key reads the store (the route); the others find it cached.
    assert [post("channel:phone", "phone") for _ in range(3)] == [201, 201, 201]
    assert [post("channel:web", "phone") for _ in range(2)] == [403, 403]
    assert [post("dashboard", "phone") for _ in range(2)] == [403, 403]


def test_of_a_key_header_given_twice_the_first_counts_on_both_paths(access: Access) -> None:
    """The plain path reads the raw headers, the route Starlette's `headers.get`: both take
    the first of a repeated header, so one request is judged by the same key on either."""
    phone, web = access.keys["channel:phone"], access.keys["channel:web"]

    def post(first: str, second: str) -> int:
        raw = raw_touchpoint(source={"channel": "phone", "id": uuid.uuid4().hex})
        headers = [("X-API-Key", first), ("X-API-Key", second)]
        return access.client.post("/v1/touchpoints", json=raw, headers=headers).status_code

    # Three each: the first may read the store (the route), the others find the key cached.
    assert [post(phone, web) for _ in range(3)] == [201, 201, 201]
    assert [post(web, phone) for _ in range(3)] == [403, 403, 403]


def test_unknown_key_is_401(access: Access) -> None:
    response = access.client.get("/v1/projections", headers=bearer("hub_" + "x" * 43))
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unknown-key"


def test_revoked_key_is_401_within_the_cache_time(access: Access) -> None:
    record, key = access.hub.keys.create("dashboard", "soon revoked")
    assert access.client.get("/v1/projections", headers=bearer(key)).status_code == 200
    # Revoked by another process: this one learns of it when its cache entry expires.
    other = Hub(dict(access.hub.env), key_cache_s=0)
    try:
        other.keys.revoke(record.id)
    finally:
        other.close()
    time.sleep(access.hub.keys.cache_s + 0.05)
    response = access.client.get("/v1/projections", headers=bearer(key))
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/revoked-key"


def test_denials_are_counted_by_reason(access: Access) -> None:
    def denials(reason: str) -> float:
        text = access.client.get("/metrics", headers=bearer(access.keys["admin"])).text
        line = f'hub_auth_denials_total{{reason="{reason}"}} '
        found = [float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)]
        return found[0] if found else 0.0

    before = (denials("missing-key"), denials("wrong-role"))
    access.client.get("/v1/projections")
    access.client.get("/v1/projections", headers=bearer(access.keys["agent"]))
    assert (denials("missing-key"), denials("wrong-role")) == (before[0] + 1, before[1] + 1)


def test_login_keeps_the_key_in_an_http_only_strict_cookie(access: Access) -> None:
    response = access.client.post(
        "/login",
        content=f"key={access.keys['dashboard']}&next=/v1/projections",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/v1/projections"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("hub_key=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    try:
        assert access.client.get("/v1/projections").status_code == 200
        out = access.client.get("/logout", follow_redirects=False)
        assert out.status_code == 303
        assert 'hub_key=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    finally:
        access.client.cookies.clear()


def test_login_with_a_wrong_key_shows_the_form_again_with_401(access: Access) -> None:
    response = access.client.post(
        "/login",
        content="key=hub_wrong-wrong-wrong-wrong-wrong&next=//evil.example",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert 'value="/"' in response.text  # never an open redirect
    assert access.client.get("/login").status_code == 200


def test_store_without_keys_admits_every_caller(client: TestClient) -> None:
    assert client.get("/v1/projections").status_code == 200
    assert client.post("/v1/touchpoints", json=phone_touchpoint()).status_code == 201


def test_browser_opening_a_page_without_a_key_is_sent_to_the_login_form(access: Access) -> None:
    response = access.client.get(
        "/v1/open-items?kind=repair",
        headers={"accept": "text/html,application/xhtml+xml"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fv1%2Fopen-items%3Fkind%3Drepair"
