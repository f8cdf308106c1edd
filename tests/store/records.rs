//! The other records: usage reports, replies, agents and settings, API keys, the audit log,
//! and a reopen. The tests, each run on both backends by `main.rs`.

use ccgw::store::{
    now_millis, source, AgentRecord, ApiKeyRecord, AuditFilter, AuditRecord, Session,
    SessionFilter, StoreError, StoredReply, UsageGroupBy, UsageQuery, UsageRecord,
};
use serde_json::json;

use crate::{add, session_at, usage, Fixture};

fn usage_row(session: &str, owner: &str, model: &str, user: Option<&str>, at: i64) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::new_v4().to_string(),
        owner: owner.into(),
        model: model.into(),
        end_user: user.map(String::from),
        created_at: at,
        input_tokens: 10,
        cache_creation_input_tokens: 1,
        cache_read_input_tokens: 2,
        cost_usd: Some(0.5),
        duration_ms: 5,
        ..usage(session, "", None)
    }
}

pub(crate) async fn usage_reports_sum_per_group_and_filter(f: Fixture) {
    let store = &*f.store;
    let s = add(store, 1).await;
    let day = 86_400_000;
    let t = 1_773_576_000_000; // 2026-03-15T12:00:00Z
    for r in [
        usage_row(&s.id, "key_a", "sonnet", Some("alice"), t),
        usage_row(&s.id, "key_a", "opus", None, t + day),
        usage_row(&s.id, "key_b", "sonnet", Some("bob"), t),
    ] {
        store.record_usage(&r).await.expect("usage");
    }
    let mut err = usage_row(&s.id, "key_b", "sonnet", None, t);
    err.outcome = "upstream_error".into();
    err.cost_usd = None;
    store.record_usage(&err).await.expect("usage");

    let by = |group_by| UsageQuery {
        group_by,
        ..Default::default()
    };
    let keys = store.usage_report(&by(UsageGroupBy::Key)).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].group.as_str(), keys[0].requests, keys[0].cost_usd),
        ("key_a", 2, 1.0)
    );
    assert_eq!((keys[1].requests, keys[1].errors), (2, 1));
    assert_eq!(keys[1].input_tokens, 20);
    assert_eq!(
        (
            keys[1].cache_read_input_tokens,
            keys[1].cache_creation_input_tokens
        ),
        (4, 2)
    );
    let days = store.usage_report(&by(UsageGroupBy::Day)).await.unwrap();
    let names: Vec<_> = days.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["2026-03-15", "2026-03-16"]);
    let users = store.usage_report(&by(UsageGroupBy::User)).await.unwrap();
    let names: Vec<_> = users.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["", "alice", "bob"]);
    let models = store.usage_report(&by(UsageGroupBy::Model)).await.unwrap();
    let names: Vec<_> = models
        .iter()
        .map(|g| (g.group.as_str(), g.requests))
        .collect();
    assert_eq!(names, [("opus", 1), ("sonnet", 3)]);
    let only = UsageQuery {
        owner: Some("key_a".into()),
        model: Some("sonnet".into()),
        ..Default::default()
    };
    let total = store.usage_report(&only).await.unwrap();
    assert_eq!(total.len(), 1);
    assert_eq!((total[0].group.as_str(), total[0].requests), ("total", 1));
    let window = UsageQuery {
        from: Some(t + 1),
        to: Some(t + 2 * day),
        ..Default::default()
    };
    assert_eq!(store.usage_report(&window).await.unwrap()[0].requests, 1);
    let none = UsageQuery {
        owner: Some("key_z".into()),
        ..Default::default()
    };
    assert!(store.usage_report(&none).await.unwrap().is_empty());

    let spend = store.usage_spend_since(t - day).await.unwrap();
    let a: f64 = spend
        .iter()
        .filter(|(o, _, _)| o == "key_a")
        .map(|(_, _, c)| c)
        .sum();
    assert_eq!(a, 1.0);
    assert_eq!(spend.iter().filter(|(o, _, _)| o == "key_a").count(), 2);
    assert!(spend.iter().all(|(_, d, _)| d % day == 0));
    assert!(store
        .usage_spend_since(now_millis() + day)
        .await
        .unwrap()
        .is_empty());

    let per_model = store.usage_by_model(&s.id).await.unwrap();
    let names: Vec<_> = per_model
        .iter()
        .map(|(m, t)| (m.as_str(), t.requests, t.cost_usd))
        .collect();
    assert_eq!(names, [("opus", 1, Some(0.5)), ("sonnet", 3, Some(1.0))]);
    assert!(store.usage_by_model("ghost").await.unwrap().is_empty());
}

fn reply(id: &str, previous: Option<&str>, at: i64) -> StoredReply {
    StoredReply {
        id: id.into(),
        kind: "response".into(),
        owner: "k1".into(),
        previous_id: previous.map(String::from),
        body: json!({"output": [id], "n": 1.5}),
        created_at: at,
    }
}

pub(crate) async fn replies_round_trip_replace_and_expire(f: Fixture) {
    let store = &*f.store;
    store.put_reply(&reply("r1", None, 10)).await.unwrap();
    store.put_reply(&reply("r2", Some("r1"), 20)).await.unwrap();
    assert_eq!(
        store.get_reply("r2").await.unwrap(),
        Some(reply("r2", Some("r1"), 20))
    );
    assert_eq!(store.get_reply("nope").await.unwrap(), None);
    let mut again = reply("r2", Some("r1"), 20);
    again.body = json!({"output": "new"});
    store.put_reply(&again).await.unwrap();
    assert_eq!(
        store.get_reply("r2").await.unwrap().unwrap().body["output"],
        "new"
    );
    assert_eq!(store.delete_replies_before(15).await.unwrap(), 1);
    assert_eq!(store.get_reply("r1").await.unwrap(), None);
    assert!(store.delete_reply("r2").await.unwrap());
    assert!(!store.delete_reply("r2").await.unwrap());
}

pub(crate) async fn agents_and_session_settings_round_trip(f: Fixture) {
    let store = &*f.store;
    let agent = |name: &str, tools: Option<Vec<&str>>, at: i64| AgentRecord {
        name: name.into(),
        description: format!("{name} agent"),
        prompt: "Review the diff.".into(),
        tools: tools.map(|t| t.into_iter().map(String::from).collect()),
        model: Some("haiku".into()),
        created_at: at,
        updated_at: at,
    };
    store
        .put_agent(&agent("reviewer", Some(vec!["Read"]), 1))
        .await
        .unwrap();
    store.put_agent(&agent("Alpha", None, 2)).await.unwrap();
    // A replace keeps the creation time.
    let mut changed = agent("reviewer", Some(vec!["Read", "Grep"]), 9);
    changed.prompt = "Be strict.".into();
    store.put_agent(&changed).await.unwrap();
    let all = store.list_agents().await.unwrap();
    let names: Vec<_> = all.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Alpha", "reviewer"], "by name, byte order");
    assert_eq!(all[0].tools, None);
    assert_eq!(
        (all[1].prompt.as_str(), all[1].created_at, all[1].updated_at),
        ("Be strict.", 1, 9)
    );
    assert_eq!(all[1].tools, Some(vec!["Read".to_string(), "Grep".into()]));
    assert!(store.delete_agent("Alpha").await.unwrap());
    assert!(!store.delete_agent("Alpha").await.unwrap());

    let s = add(store, 1).await;
    assert_eq!(store.get_session_settings(&s.id).await.unwrap(), None);
    let v = json!({"thinking": {"budget_tokens": 2048}, "max_turns": 3});
    store.put_session_settings(&s.id, &v).await.unwrap();
    let w = json!({"effort": "high"});
    store.put_session_settings(&s.id, &w).await.unwrap();
    assert_eq!(store.get_session_settings(&s.id).await.unwrap(), Some(w));
    // Settings go with their session.
    store.delete_session(&s.id).await.unwrap();
    assert_eq!(store.get_session_settings(&s.id).await.unwrap(), None);
}

fn key(id: &str, hash: &str, at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        name: format!("{id} name"),
        role: "user".into(),
        prefix: "ccgw_abc".into(),
        secret_hash: hash.into(),
        policy: json!({"models": ["sonnet"]}),
        limits: json!({"rpm": 10}),
        created_at: at,
        updated_at: at,
        expires_at: Some(at + 1000),
        revoked_at: None,
    }
}

pub(crate) async fn api_keys_round_trip_and_version(f: Fixture) {
    let store = &*f.store;
    assert_eq!(store.api_keys_version().await.unwrap(), (0, 0));
    store.put_api_key(&key("key_b", "h2", 20)).await.unwrap();
    store.put_api_key(&key("key_a", "h1", 10)).await.unwrap();
    assert_eq!(store.api_keys_version().await.unwrap(), (20, 2));
    let listed: Vec<_> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, ["key_a", "key_b"], "oldest first");
    assert_eq!(
        store.get_api_key("key_a").await.unwrap(),
        Some(key("key_a", "h1", 10))
    );
    assert_eq!(store.get_api_key("key_z").await.unwrap(), None);

    let mut revoked = key("key_a", "h1", 10);
    revoked.revoked_at = Some(30);
    revoked.updated_at = 30;
    revoked.limits = json!({"rpm": 1});
    store.put_api_key(&revoked).await.unwrap();
    assert_eq!(store.get_api_key("key_a").await.unwrap(), Some(revoked));
    assert_eq!(store.api_keys_version().await.unwrap(), (30, 2));

    // Another key's secret hash is a conflict.
    let err = store
        .put_api_key(&key("key_c", "h2", 40))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.api_keys_version().await.unwrap(), (30, 2));
}

fn entry(kind: &str, key: Option<&str>, session: Option<&str>, at: i64) -> AuditRecord {
    AuditRecord {
        id: 0,
        at,
        kind: kind.into(),
        key_id: key.map(String::from),
        key_label: None,
        session_id: session.map(String::from),
        subject: Some("Bash".into()),
        detail: json!({"command": "ls"}),
    }
}

pub(crate) async fn audit_appends_lists_filters_and_refuses_changes(f: Fixture) {
    let store = &*f.store;
    store.put_api_key(&key("key_a", "h1", 1)).await.unwrap();
    let mut s = session_at(1);
    s.owner = "key_a".into();
    store.create_session(&s).await.unwrap();

    store.append_audit(&[]).await.unwrap();
    store
        .append_audit(&[
            entry("tool_call", None, Some(&s.id), 100),
            entry("key_created", Some("admin"), None, 200),
            entry("tool_call", Some("key_b"), Some("elsewhere"), 300),
        ])
        .await
        .unwrap();
    let all = store
        .list_audit(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let first = &all[2];
    // No key named: the session's owner, and that key's name.
    assert_eq!(first.key_id.as_deref(), Some("key_a"));
    assert_eq!(first.key_label.as_deref(), Some("key_a name"));
    assert_eq!(first.detail, json!({"command": "ls"}));
    assert_eq!(first.subject.as_deref(), Some("Bash"));

    let list = |filter: AuditFilter| async move { store.list_audit(&filter).await.unwrap() };
    let by_key = list(AuditFilter {
        key: Some("key_a".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(by_key.len(), 1);
    let by_kind = list(AuditFilter {
        kind: Some("tool_call".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(by_kind.len(), 2);
    let by_session = list(AuditFilter {
        session: Some(s.id.clone()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(by_session.len(), 1);
    let window = list(AuditFilter {
        from: Some(200),
        to: Some(300),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].kind, "key_created");
    let page = list(AuditFilter {
        limit: 2,
        ..Default::default()
    })
    .await;
    let next = list(AuditFilter {
        before: page.last().map(|e| e.id),
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!((page.len(), next.len()), (2, 1));
    assert_eq!(next[0].id, first.id);

    // Append-only: the database itself refuses a change, whoever asks.
    for sql in ["UPDATE audit_log SET kind = 'x'", "DELETE FROM audit_log"] {
        let err = f.raw(sql).await.unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    // Deleting the session leaves its entries.
    store.delete_session(&s.id).await.unwrap();
    assert_eq!(
        list(AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .len(),
        3
    );
}

pub(crate) async fn records_survive_a_reopen(f: Fixture) {
    let mut s = Session::new("/w", "sonnet", source::ANTHROPIC);
    s.allowed_tools = vec!["Read".into()];
    f.store.create_session(&s).await.unwrap();
    f.store.set_history_key(&s.id, Some("hk")).await.unwrap();
    f.store
        .append_events(&s.id, "t1", &[("user_message", json!({"text": "hi"}))])
        .await
        .unwrap();
    f.store
        .record_usage(&usage(&s.id, "u1", Some(0.1)))
        .await
        .unwrap();
    let before = f.store.get_session(&s.id).await.unwrap().unwrap();
    // Reopening runs the migrations again: a no-op, and numbering goes on where it stopped.
    for round in 0..2 {
        let store = f.reopen().await;
        assert_eq!(
            store.get_session(&s.id).await.unwrap().as_ref(),
            Some(&before)
        );
        let found = store.find_session_by_history_key("hk").await.unwrap();
        assert_eq!(found.map(|x| x.id), Some(s.id.clone()));
        assert_eq!(store.usage_for_session(&s.id).await.unwrap().requests, 1);
        let last = store
            .append_events(&s.id, "t2", &[("text", json!("again"))])
            .await
            .unwrap();
        assert_eq!(last, round + 2);
    }
}

/// Defaults carried by a session's store record: the bits other tests do not set.
pub(crate) async fn a_session_keeps_its_owner_and_fork(f: Fixture) {
    let store = &*f.store;
    let mut s = session_at(5);
    s.owner = "key_x".into();
    s.forked_from = Some("parent".into());
    s.tools = vec!["Bash".into(), "Read".into()];
    store.create_session(&s).await.unwrap();
    let mut changed = s.clone();
    changed.owner = "key_y".into(); // ignored: set at creation
    let stored = store.update_session(&changed).await.unwrap();
    assert_eq!(stored.owner, "key_x");
    assert_eq!(stored.forked_from.as_deref(), Some("parent"));
    assert_eq!(stored.tools, s.tools);
    let mine = store
        .list_sessions(&SessionFilter {
            owner: Some("key_x".into()),
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 1);
}
