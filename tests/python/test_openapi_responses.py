"""The OpenAPI description against real replies: a sample of native and admin operations is
called on a gateway under its defaults (warm pool on, temporary workspaces, no key) with the
demo upstream, and each JSON reply is validated with `jsonschema` against the schema that
/openapi.json gives for that operation and status. A schema that says more, or other, than the
handler sends fails here.
"""

from __future__ import annotations

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import ccgw_harness as h

DOC_URI = "urn:ccgw:openapi"


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


class Checker:
    def __init__(self, doc: dict):
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)
        self.checked: list[str] = []

    def errors(self, schema: dict, body) -> list[str]:
        found = sorted(
            Draft202012Validator(schema, registry=self.registry).iter_errors(body),
            key=lambda e: list(e.absolute_path),
        )
        return [f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found[:10]]

    def component(self, name: str) -> dict:
        return {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": DOC_URI + "#" + _pointer("components", "schemas", name)}

    def check(self, method: str, path: str, r: httpx.Response) -> dict:
        """Validate `r` against the description of `method path` at its status."""
        op = self.doc["paths"][path][method]
        status = str(r.status_code)
        assert status in op["responses"], f"{method} {path}: {status} is not described: {r.text}"
        assert r.status_code < 300, f"{method} {path}: {status} {r.text}"
        content = op["responses"][status].get("content", {})
        assert "application/json" in content, f"{method} {path} {status}: no JSON schema"
        assert r.headers["content-type"].startswith("application/json"), r.headers
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": DOC_URI
            + "#"
            + _pointer("paths", path, method, "responses", status, "content", "application/json", "schema"),
        }
        body = r.json()
        errors = self.errors(schema, body)
        assert not errors, f"{method} {path} {status}: the reply does not match its schema:\n" + "\n".join(errors)
        self.checked.append(f"{method} {path} {status}")
        return body


def test_real_replies_match_their_schemas(launch_ccgw, tmp_path):
    port = h.free_port()
    url = f"http://127.0.0.1:{port}"
    gateway = launch_ccgw(
        "openapi-replies",
        ["serve", "--demo", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(tmp_path / "data")],
        h.clean_env(),
    )
    gateway.wait_ready(f"{url}/health")
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as c:
        ck = Checker(c.get("/openapi.json").json())

        s = ck.check("post", "/api/sessions", c.post("/api/sessions", json={"title": "schemas"}))
        sid = s["id"]
        at = "/api/sessions/{id}"
        ck.check("get", at, c.get(f"/api/sessions/{sid}"))
        ck.check("get", "/api/sessions", c.get("/api/sessions"))
        reply = ck.check(
            "post", at + "/messages", c.post(f"/api/sessions/{sid}/messages", json={"content": "hello"})
        )
        assert reply["session_id"] == sid
        history = ck.check("get", at + "/history", c.get(f"/api/sessions/{sid}/history"))
        assert history["data"], "the turn is in the history"
        ck.check("get", at + "/export", c.get(f"/api/sessions/{sid}/export"))
        ck.check("patch", at, c.patch(f"/api/sessions/{sid}", json={"title": "renamed", "max_turns": 3}))
        ck.check("get", at + "/cost", c.get(f"/api/sessions/{sid}/cost"))
        ck.check("get", at + "/tool-calls", c.get(f"/api/sessions/{sid}/tool-calls"))
        ck.check("get", at + "/tool-permissions", c.get(f"/api/sessions/{sid}/tool-permissions"))
        ck.check("get", at + "/files", c.get(f"/api/sessions/{sid}/files"))
        ck.check(
            "post", at + "/files/upload",
            c.post(f"/api/sessions/{sid}/files/upload", json={"path": "a.txt", "content_base64": "aGk="}),
        )
        ck.check("get", at + "/memory", c.get(f"/api/sessions/{sid}/memory"))
        ck.check("get", at + "/changes", c.get(f"/api/sessions/{sid}/changes"))
        ck.check("get", at + "/hooks", c.get(f"/api/sessions/{sid}/hooks"))
        ck.check("get", at + "/commands", c.get(f"/api/sessions/{sid}/commands"))
        ck.check("post", at + "/interrupt", c.post(f"/api/sessions/{sid}/interrupt"))
        fork = ck.check("post", at + "/fork", c.post(f"/api/sessions/{sid}/fork"))
        assert fork["forked_from"] == sid

        ck.check(
            "post", at + "/commands/{name}",
            c.post(f"/api/sessions/{sid}/commands/help", json={}),
        )
        ck.check(
            "put", at + "/tool-permissions",
            c.put(f"/api/sessions/{sid}/tool-permissions", json={"tools": [], "allowed_tools": []}),
        )
        ck.check("put", at + "/memory", c.put(f"/api/sessions/{sid}/memory", json={"content": "# Notes"}))
        ck.check("put", at + "/context", c.put(f"/api/sessions/{sid}/context", json={"append_system_prompt": "Be brief."}))
        ck.check(
            "post", at + "/hooks",
            c.post(f"/api/sessions/{sid}/hooks", json={"event": "PostToolUse", "mode": "watch"}),
        )

        # The check itself: a session without its id, or with a number for a name, is refused.
        session = ck.component("SessionInfo")
        assert ck.errors(session, s) == []
        assert ck.errors(session, {k: v for k, v in s.items() if k != "id"}), "a missing id passes"
        assert ck.errors(session, {**s, "title": 7}), "a wrong type passes"

        ck.check("get", "/api/tools", c.get("/api/tools"))
        ck.check("get", "/api/agents", c.get("/api/agents"))
        ck.check(
            "post", "/api/agents",
            c.post("/api/agents", json={"name": "reviewer", "description": "Reviews", "prompt": "Review."}),
        )
        ck.check("get", "/api/agents/{name}/config", c.get("/api/agents/reviewer/config"))
        ck.check("get", "/api/commands", c.get("/api/commands"))
        p = ck.check("post", "/api/projects", c.post("/api/projects", json={"name": "p", "defaults": {"model": "default"}}))
        ck.check("get", "/api/projects/{id}", c.get(f"/api/projects/{p['id']}"))
        ck.check("get", "/api/projects", c.get("/api/projects"))
        ck.check("post", "/api/ws-tickets", c.post("/api/ws-tickets"))
        ck.check("get", "/api/usage", c.get("/api/usage"))

        convs = ck.check("get", "/admin/api/conversations", c.get("/admin/api/conversations"))
        assert convs["data"], "the session's turn is a conversation"
        cid = convs["data"][0]["id"]
        ck.check("get", "/admin/api/conversations/{id}", c.get(f"/admin/api/conversations/{cid}"))
        ck.check("get", "/admin/api/conversations/{id}/events", c.get(f"/admin/api/conversations/{cid}/events"))
        ck.check("get", "/admin/api/stats", c.get("/admin/api/stats"))
        ck.check("get", "/admin/api/audit", c.get("/admin/api/audit"))
        ck.check("get", "/admin/api/usage", c.get("/admin/api/usage"))
        ck.check("get", "/admin/api/keys", c.get("/admin/api/keys"))

        # Last: the first key turns authentication on.
        issued = ck.check("post", "/admin/api/keys", c.post("/admin/api/keys", json={"name": "ops", "role": "admin"}))
        c.headers["authorization"] = f"Bearer {issued['secret']}"
        kid = issued["id"]
        ck.check("get", "/admin/api/keys/{id}", c.get(f"/admin/api/keys/{kid}"))
        rotated = ck.check("post", "/admin/api/keys/{id}/rotate", c.post(f"/admin/api/keys/{kid}/rotate"))
        c.headers["authorization"] = f"Bearer {rotated['secret']}"
        ck.check("get", "/admin/api/keys", c.get("/admin/api/keys"))
        ck.check("delete", "/admin/api/keys/{id}", c.delete(f"/admin/api/keys/{kid}"))

        assert len(ck.checked) >= 45, ck.checked
    problems = h.shutdown_and_check(gateway)
    assert not problems, "\n".join(problems)
