"""Every endpoint against its OpenAPI contract (schemathesis): no 5xx, documented statuses and bodies."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.serving.conftest import Served


def test_every_endpoint_keeps_its_contract(served: Served) -> None:
    import schemathesis  # a dev dependency: the contract test never skips

    from workbench.serving.app import create_app

    state = served.state(consume=False)
    app = create_app(state)
    state.start()  # the ASGI transport does not run the lifespan
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        checked = []
        for result in schema.get_all_operations():
            op = result.ok()

            @given(case=op.as_strategy())
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def keeps_contract(case: Any) -> None:
                case.call_and_validate()

            keeps_contract()
            checked.append(op.label)
        assert len(checked) == 8, checked  # the admin endpoints too: without the token, a documented 401
    finally:
        state.stop()


def test_the_contract_names_every_endpoint(served: Served) -> None:
    from workbench.serving.app import create_app

    spec = create_app(served.state(consume=False)).openapi()
    assert {p: sorted(ops) for p, ops in spec["paths"].items()} == {
        "/events": ["post"], "/feedback": ["post"], "/health": ["get"], "/metrics": ["get"],
        "/recommendations": ["get"], "/admin/routing": ["get", "post"], "/admin/explore": ["post"],
    }  # fmt: skip
    params = {p["name"]: p for p in spec["paths"]["/recommendations"]["get"]["parameters"]}
    assert params["session_id"]["required"] is True and params["k"]["schema"]["maximum"] == 100
