//! End to end: projects (issue 11 §7), with two user keys and one admin key, the real CLI and
//! the mock upstream. Create, read, list, change and delete; a project's defaults fill what a
//! session's request leaves out (explicit fields win) and the session runs a turn with them;
//! `?project_id=` lists a project's sessions; another key's project is a 404 everywhere, and
//! no session is made in it; bad input is a 400 naming the field; a project with sessions is
//! not deleted (409).

mod common;

use common::*;
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_KEY;

#[tokio::test]
async fn a_projects_defaults_fill_its_sessions_and_its_listing_is_its_own() {
    let root = tempfile::tempdir().unwrap();
    let roots = vec![root.path().to_path_buf()];
    let app = spawn_defaults_app_with(|c| {
        c.api_keys = vec![ADMIN.into()];
        c.builtin_tools = vec!["Read".into(), "Bash".into()];
        c.workspace_roots = roots;
    })
    .await;
    let (a_id, a) = user_key(&app, "alice").await;
    let (_, b) = user_key(&app, "bob").await;
    let (s, p) = app
        .request(
            "POST",
            "/api/projects",
            Some(
                &json!({"name": "billing", "description": "the billing service",
                "defaults": {"workspace": root.path(), "model": "haiku", "tools": ["Read"],
                             "permission_mode": "plan"}}),
            ),
            Some(&a),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["owner"], a_id.as_str());
    assert_eq!(p["defaults"]["model"], "haiku");
    let pid = p["id"].as_str().unwrap().to_string();
    let canonical = root.path().canonicalize().unwrap();

    // A session that says nothing takes every default.
    let (s, s1) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"project_id": pid})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 201, "{s1}");
    assert_eq!(s1["project_id"], pid.as_str());
    assert_eq!(s1["model"], "haiku");
    assert_eq!(s1["tools"], json!(["Read"]));
    assert_eq!(s1["permission_mode"], "plan");
    assert_eq!(s1["workspace"], canonical.display().to_string());
    assert_eq!(s1["workspace_is_temp"], false);
    // And runs a turn with them.
    let id1 = s1["id"].as_str().unwrap().to_string();
    let (s, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{id1}/messages"),
            Some(&json!({"content": "hello project"})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["text"], "hello project", "{r}");

    // What a request says wins over the defaults.
    let (s, s2) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"project_id": pid, "model": "sonnet", "tools": [],
                         "permission_mode": "default"})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 201, "{s2}");
    assert_eq!(s2["model"], "sonnet");
    assert_eq!(s2["tools"], json!([]));
    assert_eq!(s2["permission_mode"], "default");
    let id2 = s2["id"].as_str().unwrap().to_string();

    // A session outside the project is not in its listing.
    let outside = create_session_as(&app, &a, json!({})).await;
    let (_, listed) = app
        .request(
            "GET",
            &format!("/api/sessions?project_id={pid}"),
            None,
            Some(&a),
        )
        .await;
    let mut got = ids(&listed);
    got.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(got, want);
    assert!(!got.contains(&outside));
    let (_, all) = app.request("GET", "/api/sessions", None, Some(&a)).await;
    let projected: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["project_id"] == pid.as_str())
        .collect();
    assert_eq!(
        projected.len(),
        2,
        "the listing shows each session's project"
    );

    // Another key: the project does not exist for it.
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "mine"}))),
        ("DELETE", None),
    ] {
        let (s, e) = app
            .request(
                method,
                &format!("/api/projects/{pid}"),
                body.as_ref(),
                Some(&b),
            )
            .await;
        assert_eq!(s, 404, "{method}: {e}");
        assert_eq!(
            e["error"]["message"],
            format!("No project with the id '{pid}'"),
            "{e}"
        );
    }
    let (s, e) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"project_id": pid})),
            Some(&b),
        )
        .await;
    assert_eq!(s, 404, "no session in another key's project: {e}");
    let (_, lb) = app.request("GET", "/api/projects", None, Some(&b)).await;
    assert!(ids(&lb).is_empty());
    let (_, lbs) = app
        .request(
            "GET",
            &format!("/api/sessions?project_id={pid}"),
            None,
            Some(&b),
        )
        .await;
    assert!(
        ids(&lbs).is_empty(),
        "B lists none of the project's sessions"
    );
    // The admin sees it, and filters by owner.
    let (s, _) = app
        .request("GET", &format!("/api/projects/{pid}"), None, Some(ADMIN))
        .await;
    assert_eq!(s, 200);
    let (_, la) = app
        .request(
            "GET",
            &format!("/api/projects?owner={a_id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(ids(&la), vec![pid.clone()]);
    app.stop().await;
}

async fn create_session_as(app: &TestApp, key: &str, body: Value) -> String {
    let (s, v) = app
        .request("POST", "/api/sessions", Some(&body), Some(key))
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn projects_are_changed_checked_and_deleted() {
    let app = spawn_app_with(|c| {
        c.api_keys = vec![ADMIN.into()];
        c.builtin_tools = vec!["Read".into()];
    })
    .await;
    let (_, a) = user_key(&app, "alice").await;
    let post = |body: Value| {
        let app = &app;
        let a = a.clone();
        async move {
            app.request("POST", "/api/projects", Some(&body), Some(&a))
                .await
        }
    };
    // Bad input: a 400 naming the field.
    for (body, param) in [
        (json!({}), "name"),
        (json!({"name": "  "}), "name"),
        (json!({"name": 3}), "name"),
        (json!({"name": "p", "description": false}), "description"),
        (json!({"name": "p", "defaults": []}), "defaults"),
        (
            json!({"name": "p", "defaults": {"modle": "x"}}),
            "defaults.modle",
        ),
        (
            json!({"name": "p", "defaults": {"model": "no-such-model"}}),
            "defaults.model",
        ),
        (
            json!({"name": "p", "defaults": {"tools": ["Bash"]}}),
            "defaults.tools",
        ),
        (
            json!({"name": "p", "defaults": {"tools": "Read"}}),
            "defaults.tools",
        ),
        (
            json!({"name": "p", "defaults": {"permission_mode": "yolo"}}),
            "defaults.permission_mode",
        ),
        (
            json!({"name": "p", "defaults": {"workspace": "relative/dir"}}),
            "defaults.workspace",
        ),
    ] {
        let (s, e) = post(body.clone()).await;
        assert_eq!(s, 400, "{body}: {e}");
        assert_eq!(e["error"]["param"], param, "{body}: {e}");
    }
    let (s, p) =
        post(json!({"name": "web", "defaults": {"model": "haiku", "tools": ["Read"]}})).await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let path = format!("/api/projects/{pid}");

    // A change: named fields replace, a null default is cleared, the rest stays.
    let (s, p2) = app
        .request(
            "PATCH",
            &path,
            Some(
                &json!({"name": "web app", "defaults": {"model": null, "permission_mode": "plan"}}),
            ),
            Some(&a),
        )
        .await;
    assert_eq!(s, 200, "{p2}");
    assert_eq!(p2["name"], "web app");
    assert_eq!(
        p2["defaults"],
        json!({"tools": ["Read"], "permission_mode": "plan"})
    );
    let (s, e) = app
        .request("PATCH", &path, Some(&json!({"name": ""})), Some(&a))
        .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["param"], "name");
    let (_, got) = app.request("GET", &path, None, Some(&a)).await;
    assert_eq!(got["name"], "web app", "a refused change changes nothing");

    // A project with a session is not deleted; without, it is.
    let sid = create_session_as(&app, &a, json!({"project_id": pid})).await;
    let (s, e) = app.request("DELETE", &path, None, Some(&a)).await;
    assert_eq!(s, 409, "{e}");
    let (s, _) = app
        .request("DELETE", &format!("/api/sessions/{sid}"), None, Some(&a))
        .await;
    assert_eq!(s, 204);
    let (s, _) = app.request("DELETE", &path, None, Some(&a)).await;
    assert_eq!(s, 204);
    let (s, _) = app.request("GET", &path, None, Some(&a)).await;
    assert_eq!(s, 404);
    let (s, e) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"project_id": pid})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 404, "no session in a deleted project: {e}");
    app.stop().await;
}

#[tokio::test]
async fn a_session_keeps_its_project_across_a_restart() {
    let mut app = spawn_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let (_, a) = user_key(&app, "alice").await;
    let (s, p) = app
        .request(
            "POST",
            "/api/projects",
            Some(&json!({"name": "p"})),
            Some(&a),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_string();
    let sid = create_session_as(&app, &a, json!({"project_id": pid})).await;
    app.restart().await;
    let (s, got) = app
        .request("GET", &format!("/api/sessions/{sid}"), None, Some(&a))
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["project_id"], pid.as_str());
    let (_, listed) = app
        .request(
            "GET",
            &format!("/api/sessions?project_id={pid}"),
            None,
            Some(&a),
        )
        .await;
    assert_eq!(ids(&listed), vec![sid]);
    app.stop().await;
}
