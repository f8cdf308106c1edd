//! The OpenAPI description against the router: every route the router serves is described
//! with its methods, and nothing else is. The router's routes are read from its source
//! (src/http/router.rs, parsed with `syn`), independently of the annotations, so a route added
//! without one, or an annotation whose path or method is wrong, fails here. The served
//! document is OpenAPI 3.1, every `$ref` in it resolves, and it is open without a key.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;
use syn::visit::Visit;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// `(path, method)` of every `.route(path, get(..).post(..))` in `fn router`.
struct Routes(BTreeSet<(String, String)>);

impl<'a> Visit<'a> for Routes {
    fn visit_expr_method_call(&mut self, call: &'a syn::ExprMethodCall) {
        if call.method == "route" && call.args.len() == 2 {
            if let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(path),
                ..
            }) = &call.args[0]
            {
                let mut methods = Methods(Vec::new());
                methods.visit_expr(&call.args[1]);
                assert!(
                    !methods.0.is_empty(),
                    "no method found for route {}",
                    path.value()
                );
                for m in methods.0 {
                    self.0.insert((openapi_path(&path.value()), m));
                }
            }
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// The method routers in a route's handler expression: `get(h)` and `.post(h)`.
struct Methods(Vec<String>);

impl<'a> Visit<'a> for Methods {
    fn visit_expr_call(&mut self, call: &'a syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func {
            if let Some(name) = p.path.get_ident().map(|i| i.to_string()) {
                if METHODS.contains(&name.as_str()) {
                    self.0.push(name);
                }
            }
        }
        syn::visit::visit_expr_call(self, call);
    }
    fn visit_expr_method_call(&mut self, call: &'a syn::ExprMethodCall) {
        let name = call.method.to_string();
        if METHODS.contains(&name.as_str()) {
            self.0.push(name);
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// axum's `{*rest}` is OpenAPI's `{rest}`.
fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

fn router_routes() -> BTreeSet<(String, String)> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/router.rs"))
        .expect("router.rs is readable");
    let file = syn::parse_file(&src).expect("router.rs parses");
    let router = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.sig.ident == "router" => Some(f),
            _ => None,
        })
        .expect("router.rs has fn router");
    let mut routes = Routes(BTreeSet::new());
    routes.visit_item_fn(router);
    routes.0
}

fn described_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_string()));
            }
        }
    }
    out
}

fn description() -> Value {
    serde_json::to_value(ccgw::http::openapi::document()).expect("the document serializes")
}

#[test]
fn every_route_of_the_router_is_described_and_nothing_else() {
    let routes = router_routes();
    // The parser found the router's routes, not a handful: it cannot pass by finding none.
    assert!(routes.len() > 90, "only {} routes parsed", routes.len());
    assert!(routes.contains(&("/api/sessions/{id}/files/{path}".into(), "delete".into())));
    let described = described_routes(&description());
    let missing: Vec<_> = routes.difference(&described).collect();
    let extra: Vec<_> = described.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes without an OpenAPI operation: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "operations the router does not serve: {extra:?}"
    );
}

#[test]
fn operations_are_tagged_answered_and_uniquely_named() {
    let doc = description();
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let tag = op["tags"][0].as_str().unwrap_or_default();
            assert!(tags.contains(tag), "{m} {path}: tag {tag:?} not declared");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path} lists no response"
            );
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(ids.insert(id.clone()), "operationId {id} is used twice");
            // A keyed operation documents its errors in its protocol's shape.
            // Open operations list an empty requirement (`{}`), alone or beside the keys.
            let keyed = !op["security"]
                .as_array()
                .is_some_and(|reqs| reqs.contains(&serde_json::json!({})));
            if keyed {
                let shape = op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_default();
                let want = if path.starts_with("/v1/messages") {
                    "#/components/schemas/AnthropicError"
                } else if path.starts_with("/api/") || path.starts_with("/admin/") {
                    "#/components/schemas/NativeError"
                } else {
                    "#/components/schemas/OpenAiError"
                };
                assert_eq!(shape, want, "{m} {path}: 401 in the wrong shape");
            }
        }
    }
}

/// Every `"$ref": "#/..."` in `v`, with where it was found.
fn refs<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push((at.clone(), r));
                    }
                } else {
                    refs(child, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_served_description_is_openapi_3_1_and_every_ref_resolves() {
    let app = spawn_defaults_app_with(|_| {}).await;
    let resp = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = resp.json().await.expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "not OpenAPI 3.1: {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "ccgw");
    assert_eq!(
        doc,
        description(),
        "the served document is the generated one"
    );
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(
        found.len() > 50,
        "only {} refs: the walk found nothing",
        found.len()
    );
    for (at, r) in found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{at}: {r} does not resolve");
    }
    // Both ways of presenting a key are described.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    app.stop().await;
}

#[tokio::test]
async fn the_description_and_its_page_need_no_key_while_the_apis_do() {
    let app = spawn_defaults_app_with(|c| c.api_keys = vec!["sk-admin-openapi".into()]).await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.url)).send();
    let doc = get("/openapi.json").await.expect("sent");
    assert_eq!(doc.status(), 200);
    let page = get("/docs").await.expect("sent");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.expect("text");
    assert!(html.contains("ccgw API reference"), "{html}");
    // The page may load only this origin (its assets are embedded, see console.rs).
    assert_eq!(
        get("/v1/models").await.expect("sent").status(),
        401,
        "the APIs themselves still need a key"
    );
    app.stop().await;
}

/// Native and admin operations whose success body is free JSON by nature, and why. Every other
/// `/api` and `/admin` operation answering JSON must describe its body.
const FREE_FORM: &[(&str, &str, &str)] = &[
    (
        "get",
        "/api/sessions/{id}/context-usage",
        "the CLI's own `get_context_usage` answer, passed on as the CLI's version writes it",
    ),
    (
        "get",
        "/api/sessions/{id}/mcp",
        "the CLI's `mcp_status` entries (server info, tools, errors), passed on as it writes them",
    ),
    (
        "post",
        "/api/sessions/{id}/mcp/{name}/reconnect",
        "one of the CLI's `mcp_status` entries, as for `GET .../mcp`",
    ),
    (
        "post",
        "/api/sessions/{id}/mcp/{name}/toggle",
        "one of the CLI's `mcp_status` entries, as for `GET .../mcp`",
    ),
    (
        "get",
        "/api/mcp-servers",
        "the configured servers with what the CLI last reported of each (tools, server info)",
    ),
];

/// Whether `schema` (after one `$ref`) says what the body holds: properties, a union or an
/// array of such, not `{}` or a bare `object`.
fn is_typed(doc: &Value, schema: &Value) -> bool {
    let schema = match schema["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => schema,
    };
    ["properties", "oneOf", "anyOf", "allOf"].iter().any(|k| {
        schema
            .get(*k)
            .is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty()))
    }) || schema.get("items").is_some_and(|i| is_typed(doc, i))
}

#[test]
fn native_and_admin_success_bodies_have_real_schemas() {
    let doc = description();
    let mut checked = 0;
    let mut placeholders = Vec::new();
    let mut free = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !(path.starts_with("/api/") || path.starts_with("/admin/")) {
            continue;
        }
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            for (status, resp) in op["responses"].as_object().expect("responses") {
                let Some(schema) = resp.pointer("/content/application~1json/schema") else {
                    continue;
                };
                if !status.starts_with('2') {
                    continue;
                }
                checked += 1;
                if FREE_FORM.iter().any(|(fm, fp, _)| *fm == m && fp == path) {
                    free.insert((m, path.as_str()));
                    assert!(
                        !is_typed(&doc, schema),
                        "{m} {path} is typed now: take it off FREE_FORM"
                    );
                } else if !is_typed(&doc, schema) {
                    placeholders.push(format!("{m} {path} {status}: {schema}"));
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} JSON success bodies found");
    assert_eq!(
        free.len(),
        FREE_FORM.len(),
        "FREE_FORM names an operation that is gone"
    );
    assert!(
        placeholders.is_empty(),
        "success bodies without a schema:\n{}",
        placeholders.join("\n")
    );
}

/// Native request bodies that are free JSON by nature, and why.
const FREE_FORM_BODIES: &[(&str, &str, &str)] = &[(
    "post",
    "/api/sessions/{id}/tools/{name}",
    "the tool's own input: each tool's schema is its `input_schema` in `GET /api/tools`",
)];

#[test]
fn native_and_admin_request_bodies_have_real_schemas() {
    let doc = description();
    let mut untyped = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !(path.starts_with("/api/") || path.starts_with("/admin/")) {
            continue;
        }
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else {
                continue;
            };
            if FREE_FORM_BODIES
                .iter()
                .any(|(fm, fp, _)| *fm == m && fp == path)
            {
                continue;
            }
            if !is_typed(&doc, schema) {
                untyped.push(format!("{m} {path}: {schema}"));
            }
        }
    }
    assert!(
        untyped.is_empty(),
        "request bodies without a schema:\n{}",
        untyped.join("\n")
    );
}
