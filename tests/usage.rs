//! Usage and cost reports end to end (issue 11 §5): the real server with the warm pool on, the
//! real CLI against the mock upstream, a static admin key and two user keys. What the reports
//! say adds up to what the responses said the mock upstream reported, grouped by key, model,
//! day and end user; a user key sees only its own usage; the CSV export parses.

mod common;

use std::collections::HashMap;

use common::{spawn_defaults_app_with, user, user_key, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

const ADMIN: &str = ADMIN_KEY;

async fn get(app: &TestApp, path: &str, key: &str) -> (u16, Value) {
    app.request("GET", path, None, Some(key)).await
}

/// The report's groups by name.
fn groups(report: &Value) -> HashMap<String, Value> {
    report["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a report: {report}"))
        .iter()
        .map(|g| (g["group"].as_str().expect("group").to_string(), g.clone()))
        .collect()
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[tokio::test]
async fn reports_add_up_to_what_the_upstream_reported() {
    let app = spawn_defaults_app_with(|c| c.api_keys = vec![ADMIN.into()]).await;
    let (a_id, a) = user_key(&app, "a").await;
    let (b_id, b) = user_key(&app, "b").await;

    // Key a: OpenAI turns for two end users and an Anthropic turn for a third, two models.
    let mut a_in = 0;
    let mut a_out = 0;
    for (who, text, model) in [
        ("alice", "one [[usage:11,7]]", "sonnet"),
        ("alice", "two [[usage:5,3]]", "sonnet"),
        ("bob", "three [[usage:20,9]]", "haiku"),
    ] {
        let (status, r) = app
            .request(
                "POST",
                "/v1/chat/completions",
                Some(&json!({"model": model, "user": who, "messages": [user(text)]})),
                Some(&a),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        a_in += int(&r["usage"], "prompt_tokens");
        a_out += int(&r["usage"], "completion_tokens");
    }
    let (status, r) = app
        .request(
            "POST",
            "/v1/messages",
            Some(&json!({"model": "sonnet", "max_tokens": 50,
                "metadata": {"user_id": "carol"},
                "messages": [{"role": "user", "content": "four [[usage:13,2]]"}]})),
            Some(&a),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    a_in += int(&r["usage"], "input_tokens")
        + int(&r["usage"], "cache_read_input_tokens")
        + int(&r["usage"], "cache_creation_input_tokens");
    a_out += int(&r["usage"], "output_tokens");
    assert_eq!(
        (a_in, a_out),
        (49, 21),
        "what the mock upstream was told to report"
    );

    // Key b: a native session whose replies say their cost.
    let (status, s) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"model": "sonnet"})),
            Some(&b),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let sid = s["id"].as_str().expect("id");
    let mut b_cost = 0.0;
    let mut b_tokens = (0, 0);
    for text in ["n1 [[usage:30,10]]", "n2 [[usage:40,20]]"] {
        let (status, r) = app
            .request(
                "POST",
                &format!("/api/sessions/{sid}/messages"),
                Some(&json!({"content": text})),
                Some(&b),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        b_cost += r["cost_usd"].as_f64().unwrap_or_else(|| panic!("{r}"));
        b_tokens.0 += int(&r["usage"], "input_tokens");
        b_tokens.1 += int(&r["usage"], "output_tokens");
    }
    assert_eq!(b_tokens, (70, 30));

    // By key: each key's sums, and the total over both.
    let (status, r) = get(&app, "/admin/api/usage?group_by=key", ADMIN).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["group_by"], "key");
    let by_key = groups(&r);
    assert_eq!(by_key.len(), 2, "{r}");
    let ka = &by_key[&a_id];
    assert_eq!(int(ka, "requests"), 4);
    assert_eq!(
        int(ka, "input_tokens")
            + int(ka, "cache_read_input_tokens")
            + int(ka, "cache_creation_input_tokens"),
        a_in
    );
    assert_eq!(int(ka, "output_tokens"), a_out);
    assert_eq!(int(ka, "errors"), 0);
    let kb = &by_key[&b_id];
    assert_eq!(int(kb, "requests"), 2);
    assert_eq!(
        (int(kb, "input_tokens"), int(kb, "output_tokens")),
        b_tokens
    );
    let cost = kb["cost_usd"].as_f64().expect("cost");
    assert!(
        (cost - b_cost).abs() < 1e-9 && cost > 0.0,
        "{cost} vs {b_cost}"
    );
    assert_eq!(int(&r["total"], "requests"), 6);
    assert_eq!(int(&r["total"], "output_tokens"), a_out + b_tokens.1);

    // By model, by day, by end user.
    let (_, r) = get(&app, "/admin/api/usage?group_by=model", ADMIN).await;
    let by_model = groups(&r);
    assert_eq!(int(&by_model["haiku"], "requests"), 1, "{r}");
    assert_eq!(int(&by_model["haiku"], "output_tokens"), 9);
    assert_eq!(int(&by_model["sonnet"], "requests"), 5);
    let (_, r) = get(&app, "/admin/api/usage?group_by=day", ADMIN).await;
    let by_day = groups(&r);
    assert_eq!(by_day.len(), 1, "{r}");
    let today = by_day.values().next().expect("a day");
    assert_eq!(int(today, "requests"), 6);
    let (_, r) = get(&app, "/admin/api/usage?group_by=user", ADMIN).await;
    let by_user = groups(&r);
    assert_eq!(int(&by_user["alice"], "requests"), 2, "{r}");
    assert_eq!(int(&by_user["alice"], "input_tokens"), 16);
    assert_eq!(int(&by_user["bob"], "requests"), 1);
    assert_eq!(int(&by_user["carol"], "requests"), 1);
    assert_eq!(
        int(&by_user[""], "requests"),
        2,
        "native turns name no end user"
    );

    // Filters: one key and model; a time window with nothing in it.
    let (_, r) = get(
        &app,
        &format!("/admin/api/usage?key={a_id}&model=sonnet"),
        ADMIN,
    )
    .await;
    assert_eq!(int(&r["total"], "requests"), 3, "{r}");
    let (_, r) = get(
        &app,
        "/admin/api/usage?from=2020-01-01&to=2020-01-31",
        ADMIN,
    )
    .await;
    assert_eq!(int(&r["total"], "requests"), 0, "{r}");

    // A user key sees its own usage only, whatever key it asks for.
    let (status, r) = get(&app, &format!("/api/usage?group_by=key&key={a_id}"), &b).await;
    assert_eq!(status, 200, "{r}");
    let own = groups(&r);
    assert_eq!(own.keys().collect::<Vec<_>>(), vec![&b_id], "{r}");
    assert_eq!(int(&r["total"], "requests"), 2);
    let (_, r) = get(&app, "/api/usage?group_by=user", &a).await;
    assert_eq!(groups(&r).len(), 3, "a's end users only: {r}");
    let (status, r) = get(&app, "/admin/api/usage", &a).await;
    assert_eq!(status, 403, "{r}");

    // Bad values are 400s naming the field.
    for (q, param) in [
        ("group_by=week", "group_by"),
        ("from=yesterday", "from"),
        ("format=xml", "format"),
    ] {
        let (status, r) = get(&app, &format!("/admin/api/usage?{q}"), ADMIN).await;
        assert_eq!(status, 400, "{q}: {r}");
        assert_eq!(r["error"]["param"], param, "{r}");
    }

    // CSV: the same sums, one row per group.
    let resp = app
        .client
        .get(format!(
            "{}/admin/api/usage?group_by=key&format=csv",
            app.url
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().expect("text");
    assert!(ct.starts_with("text/csv"), "{ct}");
    let text = resp.text().await.expect("body");
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows
        .headers()
        .expect("a header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header[0], "key");
    assert_eq!(header[1], "requests");
    let requests: HashMap<String, i64> = rows
        .records()
        .map(|r| {
            let r = r.expect("a row");
            (r[0].to_string(), r[1].parse().expect("a number"))
        })
        .collect();
    assert_eq!(requests[&a_id], 4);
    assert_eq!(requests[&b_id], 2);
    let resp = app
        .client
        .get(format!("{}/api/usage?format=csv", app.url))
        .bearer_auth(&b)
        .send()
        .await
        .expect("sent");
    let text = resp.text().await.expect("body");
    assert_eq!(text.lines().count(), 2, "a header and b's total: {text}");

    // A turn that fails is a request and an error.
    let (status, r) = app
        .request(
            "POST",
            &format!("/api/sessions/{sid}/messages"),
            Some(&json!({"content": "[[fail:400]]"})),
            Some(&b),
        )
        .await;
    assert!(status >= 400, "{status} {r}");
    let (_, r) = get(&app, "/api/usage", &b).await;
    assert_eq!(int(&r["total"], "requests"), 3, "{r}");
    assert_eq!(int(&r["total"], "errors"), 1, "{r}");
    app.stop().await;
}
