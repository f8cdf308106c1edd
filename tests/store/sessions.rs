//! Sessions, their events and tool calls, and their usage totals: the tests, each run on both
//! backends by `main.rs`.

use std::collections::HashSet;

use ccgw::store::{
    now_millis, source, status, ProjectRecord, Session, SessionFilter, StoreError, ToolCallRecord,
    UsageTotals, MAX_EVENTS_PER_CALL,
};
use serde_json::{json, Value};

use crate::{add, session_at, tool_call, usage, Fixture};

pub(crate) async fn create_and_get_round_trip_every_field(f: Fixture) {
    let store = &*f.store;
    let mut s = Session::new("/data/workspaces/x", "opus", source::NATIVE);
    s.workspace_is_temp = true;
    s.agent = Some("reviewer".into());
    s.permission_mode = Some("acceptEdits".into());
    s.system_prompt = Some("Be brief.\nReally.".into());
    s.allowed_tools = vec!["Read".into(), "Bash(git:*)".into()];
    s.title = Some("A title with 'quotes' and ünïcode".into());
    s.status = status::RUNNING.into();
    s.history_key = Some("abc123".into());
    s.transcript_leaf = Some("leaf-uuid".into());
    s.turn_mark = Some("mark-uuid".into());
    store.create_session(&s).await.unwrap();

    assert_eq!(store.get_session(&s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get_session("nope").await.unwrap(), None);

    let plain = Session::new("/w", "sonnet", source::OPENAI);
    store.create_session(&plain).await.unwrap();
    assert_eq!(store.get_session(&plain.id).await.unwrap(), Some(plain));
}

pub(crate) async fn create_rejects_a_taken_id_or_history_key(f: Fixture) {
    let store = &*f.store;
    let mut a = session_at(1);
    a.history_key = Some("k".into());
    store.create_session(&a).await.unwrap();

    let err = store.create_session(&a).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let mut b = session_at(2);
    b.history_key = Some("k".into());
    let err = store.create_session(&b).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_session(&b.id).await.unwrap(), None);
}

pub(crate) async fn update_writes_fields_and_stamps_updated_at(f: Fixture) {
    let store = &*f.store;
    let mut s = session_at(1_000);
    s.history_key = Some("hk".into());
    store.create_session(&s).await.unwrap();

    let mut changed = s.clone();
    changed.status = status::AWAITING_TOOLS.into();
    changed.title = Some("renamed".into());
    changed.allowed_tools = vec!["Write".into()];
    changed.cli_session_id = "fork-1".into();
    changed.model = "haiku".into();
    changed.agent = Some("a".into());
    changed.transcript_leaf = Some("l".into());
    changed.turn_mark = Some("m".into());
    changed.created_at = 5; // ignored
    changed.history_key = None; // ignored: set_history_key owns it
    let stored = store.update_session(&changed).await.unwrap();

    assert_eq!(stored.status, status::AWAITING_TOOLS);
    assert_eq!(stored.title.as_deref(), Some("renamed"));
    assert_eq!(stored.allowed_tools, vec!["Write".to_string()]);
    assert_eq!(stored.cli_session_id, "fork-1");
    assert_eq!(stored.model, "haiku");
    assert_eq!(stored.agent.as_deref(), Some("a"));
    assert_eq!(stored.transcript_leaf.as_deref(), Some("l"));
    assert_eq!(stored.turn_mark.as_deref(), Some("m"));
    assert_eq!(stored.created_at, 1_000);
    assert_eq!(stored.history_key.as_deref(), Some("hk"));
    assert!(stored.updated_at >= now_millis() - 60_000);
    assert_eq!(store.get_session(&s.id).await.unwrap(), Some(stored));

    let missing = session_at(1);
    let err = store.update_session(&missing).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub(crate) async fn delete_cascades_to_events_tool_calls_and_usage(f: Fixture) {
    let store = &*f.store;
    let a = add(store, 1).await;
    let b = add(store, 2).await;
    for s in [&a, &b] {
        store
            .append_events(&s.id, "t1", &[("user", json!({"text": "hi"}))])
            .await
            .unwrap();
        store
            .record_tool_call(&tool_call(&s.id, "toolu_1", 1))
            .await
            .unwrap();
        store
            .record_usage(&usage(&s.id, &format!("u-{}", s.id), None))
            .await
            .unwrap();
    }

    store.delete_session(&a.id).await.unwrap();
    assert_eq!(store.get_session(&a.id).await.unwrap(), None);
    for table in ["events", "tool_calls", "usage"] {
        assert_eq!(f.count(table, &a.id).await, 0, "{table}");
        assert_eq!(f.count(table, &b.id).await, 1, "{table} of b");
    }
    assert!(store.list_events(&a.id, 0, 100).await.unwrap().is_empty());
    assert!(store.list_tool_calls(&a.id).await.unwrap().is_empty());
    assert_eq!(
        store.usage_for_session(&a.id).await.unwrap(),
        UsageTotals::default()
    );

    let err = store.delete_session(&a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub(crate) async fn list_pages_newest_first_without_gaps_or_repeats(f: Fixture) {
    let store = &*f.store;
    // 103 sessions over 40 distinct timestamps, so many share a created_at.
    let mut all = Vec::new();
    for i in 0..103 {
        all.push(add(store, 1_000 + i % 40).await);
    }
    all.sort_by(|x, y| (y.created_at, &y.id).cmp(&(x.created_at, &x.id)));

    let mut filter = SessionFilter {
        limit: 25,
        ..SessionFilter::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_sessions(&filter).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 25);
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        // Sessions created while paging are newer: they never show up on later pages.
        add(store, 5_000 + pages).await;
        match page.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let expected: Vec<String> = all.iter().map(|s| s.id.clone()).collect();
    assert_eq!(seen, expected);

    // Exactly one full page: no cursor to an empty page.
    let page = store
        .list_sessions(&SessionFilter {
            limit: 108,
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 108);
    assert_eq!(page.next_cursor, None);

    let err = store
        .list_sessions(&SessionFilter {
            cursor: Some("not a cursor!".into()),
            ..SessionFilter::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

pub(crate) async fn list_filters_and_limits(fx: Fixture) {
    let store = &*fx.store;
    for i in 0..520 {
        let mut s = session_at(i);
        s.status = if i % 2 == 0 {
            status::IDLE
        } else {
            status::CLOSED
        }
        .into();
        s.source = if i % 5 == 0 {
            source::NATIVE
        } else {
            source::OPENAI
        }
        .into();
        s.model = if i % 3 == 0 { "opus" } else { "sonnet" }.into();
        store.create_session(&s).await.unwrap();
    }
    let list = |filter: SessionFilter| {
        let store = fx.store.clone();
        async move { store.list_sessions(&filter).await.unwrap() }
    };

    let default = list(SessionFilter::default()).await;
    assert_eq!(default.items.len(), 50);
    assert!(default.next_cursor.is_some());
    let zero = list(SessionFilter {
        limit: 0,
        ..SessionFilter::default()
    })
    .await;
    assert_eq!(zero.items.len(), 50);
    let capped = list(SessionFilter {
        limit: 10_000,
        ..SessionFilter::default()
    })
    .await;
    assert_eq!(capped.items.len(), 500);
    assert!(capped.next_cursor.is_some());

    let f = SessionFilter {
        status: Some(status::IDLE.into()),
        source: Some(source::NATIVE.into()),
        model: Some("opus".into()),
        owner: None,
        project_id: None,
        limit: 500,
        cursor: None,
    };
    let page = list(f).await;
    // i % 2 == 0 && i % 5 == 0 && i % 3 == 0: multiples of 30 below 520.
    assert_eq!(page.items.len(), 18);
    assert_eq!(page.items[0].created_at, 510);
    assert!(page
        .items
        .iter()
        .all(|s| s.status == "idle" && s.source == "native" && s.model == "opus"));

    // Filters hold across pages too.
    let mut f = SessionFilter {
        source: Some(source::NATIVE.into()),
        limit: 30,
        ..SessionFilter::default()
    };
    let mut total = 0;
    loop {
        let page = list(f.clone()).await;
        assert!(page.items.iter().all(|s| s.source == "native"));
        total += page.items.len();
        match page.next_cursor {
            Some(c) => f.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(total, 104);
}

pub(crate) async fn history_key_belongs_to_one_session_at_a_time(f: Fixture) {
    let store = &*f.store;
    let a = add(store, 1).await;
    let b = add(store, 2).await;

    assert_eq!(store.find_session_by_history_key("h1").await.unwrap(), None);
    store.set_history_key(&a.id, Some("h1")).await.unwrap();
    let found = store.find_session_by_history_key("h1").await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(a.id.clone()));

    // Setting the same key again on the holder is fine.
    store.set_history_key(&a.id, Some("h1")).await.unwrap();

    // Another session takes it: the first one loses it.
    store.set_history_key(&b.id, Some("h1")).await.unwrap();
    let found = store.find_session_by_history_key("h1").await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(b.id.clone()));
    let a_now = store.get_session(&a.id).await.unwrap().unwrap();
    assert_eq!(a_now.history_key, None);

    // Moving on to a new key frees the old one.
    store.set_history_key(&b.id, Some("h2")).await.unwrap();
    assert_eq!(store.find_session_by_history_key("h1").await.unwrap(), None);
    let b_now = store.get_session(&b.id).await.unwrap().unwrap();
    assert_eq!(b_now.history_key.as_deref(), Some("h2"));
    assert!(b_now.updated_at > b.updated_at);

    // Clearing.
    store.set_history_key(&b.id, None).await.unwrap();
    assert_eq!(store.find_session_by_history_key("h2").await.unwrap(), None);

    // An unknown session takes nothing away (the transaction rolls back).
    store.set_history_key(&a.id, Some("h3")).await.unwrap();
    let err = store
        .set_history_key("ghost", Some("h3"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let found = store.find_session_by_history_key("h3").await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(a.id.clone()));
}

pub(crate) async fn the_newest_event_containing_a_needle_is_found_however_far_back(f: Fixture) {
    let store = &*f.store;
    let a = add(store, 1).await;
    let b = add(store, 2).await;
    let user = |t: &str| ("user", json!({"content": [{"type": "text", "text": t}]}));
    store
        .append_events(&a.id, "t1", &[user("mark:1 100%_x"), user("mark:2 100%_x")])
        .await
        .unwrap();
    let filler: Vec<(&str, Value)> = (0..50).map(|n| user(&format!("plain {n}"))).collect();
    store.append_events(&a.id, "t2", &filler).await.unwrap();
    store
        .append_events(&b.id, "t1", &[user("mark:9")])
        .await
        .unwrap();
    let found = store
        .last_event_containing(&a.id, "user", "mark:")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.seq, 2);
    assert!(found.payload.to_string().contains("mark:2"));
    // The needle is text, not a pattern.
    assert!(store
        .last_event_containing(&a.id, "user", "100%_x")
        .await
        .unwrap()
        .is_some());
    assert!(store
        .last_event_containing(&a.id, "user", "1%0")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .last_event_containing(&a.id, "text", "mark:")
        .await
        .unwrap()
        .is_none());
}

pub(crate) async fn events_are_numbered_per_session_and_listed_in_order(f: Fixture) {
    let store = &*f.store;
    let a = add(store, 1).await;
    let b = add(store, 2).await;

    let last = store
        .append_events(
            &a.id,
            "turn-1",
            &[
                ("user_message", json!({"text": "hello"})),
                ("thinking", json!({"text": "hmm"})),
                (
                    "text",
                    json!({"text": "hi!", "nested": {"n": [1, 2.5, null]}}),
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(last, 3);
    assert_eq!(
        store
            .append_events(&b.id, "turn-x", &[("text", json!("other"))])
            .await
            .unwrap(),
        1
    );
    let last = store
        .append_events(
            &a.id,
            "turn-2",
            &[
                ("tool_call", json!({"id": "toolu_1"})),
                ("result", json!({})),
            ],
        )
        .await
        .unwrap();
    assert_eq!(last, 5);
    assert_eq!(store.append_events(&a.id, "turn-3", &[]).await.unwrap(), 5);

    let events = store.list_events(&a.id, 0, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(events.iter().all(|e| e.session_id == a.id));
    assert_eq!(events[0].kind, "user_message");
    assert_eq!(events[0].turn_id, "turn-1");
    assert_eq!(
        events[2].payload,
        json!({"text": "hi!", "nested": {"n": [1, 2.5, null]}})
    );
    assert_eq!(events[3].turn_id, "turn-2");
    assert!(events[0].created_at > 0);

    let tail = store.list_events(&a.id, 2, 2).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert!(store.list_events(&a.id, 5, 10).await.unwrap().is_empty());
    assert!(store.list_events("ghost", 0, 10).await.unwrap().is_empty());

    let err = store
        .append_events("ghost", "t", &[("text", json!(1))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store.append_events("ghost", "t", &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub(crate) async fn concurrent_appends_are_gapless(f: Fixture) {
    let store = f.store.clone();
    let mut s = Session::new("/w", "sonnet", source::NATIVE);
    store.create_session(&s).await.unwrap();
    let other = Session::new("/w", "sonnet", source::NATIVE);
    store.create_session(&other).await.unwrap();

    let mut tasks = Vec::new();
    for task in 0..20 {
        let store = store.clone();
        let (id, other_id) = (s.id.clone(), other.id.clone());
        tasks.push(tokio::spawn(async move {
            let mut lasts = Vec::new();
            for round in 0..10 {
                let size = 1 + (task + round) % 3;
                let batch: Vec<(&str, Value)> = (0..size)
                    .map(|i| ("text", json!({"task": task, "round": round, "i": i})))
                    .collect();
                let last = store
                    .append_events(&id, &format!("turn-{task}"), &batch)
                    .await
                    .unwrap();
                lasts.push((last, size as i64));
                store
                    .append_events(&other_id, "t", &[("text", json!(task))])
                    .await
                    .unwrap();
            }
            lasts
        }));
    }
    let mut expected_total = 0;
    for t in tasks {
        for (_, size) in t.await.unwrap() {
            expected_total += size;
        }
    }

    let events = store
        .list_events(&s.id, 0, MAX_EVENTS_PER_CALL)
        .await
        .unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=expected_total).collect::<Vec<_>>());
    // Each batch got consecutive numbers, in its own order.
    for pair in events.windows(2) {
        let (p, q) = (&pair[0].payload, &pair[1].payload);
        if p["task"] == q["task"] && p["round"] == q["round"] {
            assert_eq!(q["i"].as_i64(), p["i"].as_i64().map(|i| i + 1));
        }
    }
    let batches: HashSet<(i64, i64)> = events
        .iter()
        .filter(|e| e.payload["i"] == 0)
        .map(|e| {
            (
                e.payload["task"].as_i64().unwrap(),
                e.payload["round"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(batches.len(), 200);

    let other_events = store.list_events(&other.id, 0, 1000).await.unwrap();
    assert_eq!(
        other_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    s.status = status::CLOSED.into();
    store.update_session(&s).await.unwrap();
}

pub(crate) async fn tool_calls_are_upserted_by_id(f: Fixture) {
    let store = &*f.store;
    let s = add(store, 1).await;
    let other = add(store, 2).await;

    store
        .record_tool_call(&tool_call(&s.id, "toolu_b", 20))
        .await
        .unwrap();
    store
        .record_tool_call(&tool_call(&s.id, "toolu_a", 10))
        .await
        .unwrap();
    // The same tool_use id in another session is another record.
    store
        .record_tool_call(&tool_call(&other.id, "toolu_a", 10))
        .await
        .unwrap();

    let mut done = tool_call(&s.id, "toolu_b", 99);
    done.outcome = Some("ok".into());
    done.duration_ms = Some(1234);
    store.record_tool_call(&done).await.unwrap();
    // A later record without outcome/duration keeps the known ones.
    store
        .record_tool_call(&tool_call(&s.id, "toolu_b", 100))
        .await
        .unwrap();

    let calls = store.list_tool_calls(&s.id).await.unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "toolu_a");
    assert_eq!(calls[0].outcome, None);
    assert_eq!(calls[1].id, "toolu_b");
    assert_eq!(calls[1].outcome.as_deref(), Some("ok"));
    assert_eq!(calls[1].duration_ms, Some(1234));
    assert_eq!(calls[1].created_at, 20, "first record's time stays");
    assert_eq!(
        calls[0],
        ToolCallRecord {
            created_at: 10,
            ..tool_call(&s.id, "toolu_a", 10)
        }
    );
    assert_eq!(store.list_tool_calls(&other.id).await.unwrap().len(), 1);

    let mut denied = tool_call(&s.id, "toolu_a", 0);
    denied.outcome = Some("denied".into());
    store.record_tool_call(&denied).await.unwrap();
    let calls = store.list_tool_calls(&s.id).await.unwrap();
    assert_eq!(calls[0].outcome.as_deref(), Some("denied"));
    assert_eq!(calls[0].duration_ms, None);

    let err = store
        .record_tool_call(&tool_call("ghost", "toolu_x", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub(crate) async fn usage_is_recorded_and_summed(f: Fixture) {
    let store = &*f.store;
    let s = add(store, 1).await;
    let empty = add(store, 2).await;

    assert_eq!(
        store.usage_for_session(&s.id).await.unwrap(),
        UsageTotals::default()
    );
    store.record_usage(&usage(&s.id, "u1", None)).await.unwrap();
    assert_eq!(
        store.usage_for_session(&s.id).await.unwrap().cost_usd,
        None,
        "no cost reported"
    );
    store
        .record_usage(&usage(&s.id, "u2", Some(0.25)))
        .await
        .unwrap();
    let mut big = usage(&s.id, "u3", Some(0.5));
    big.input_tokens = 1_000_000_000_000;
    store.record_usage(&big).await.unwrap();

    let totals = store.usage_for_session(&s.id).await.unwrap();
    assert_eq!(
        totals,
        UsageTotals {
            requests: 3,
            input_tokens: 1_000_000_000_020,
            output_tokens: 60,
            cache_creation_input_tokens: 9,
            cache_read_input_tokens: 12,
            cost_usd: Some(0.75),
            duration_ms: 300,
        }
    );
    assert_eq!(
        store.usage_for_session(&empty.id).await.unwrap(),
        UsageTotals::default()
    );

    let err = store
        .record_usage(&usage(&s.id, "u1", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = store
        .record_usage(&usage("ghost", "u9", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub(crate) async fn projects_round_trip_and_name_their_sessions(f: Fixture) {
    let store = &*f.store;
    let p = ProjectRecord {
        id: "proj_1".into(),
        owner: "key_a".into(),
        name: "web".into(),
        description: String::new(),
        defaults: json!({"model": "haiku"}),
        created_at: 1,
        updated_at: 1,
    };
    store.put_project(&p).await.unwrap();
    let other = ProjectRecord {
        id: "proj_2".into(),
        owner: "key_b".into(),
        created_at: 2,
        ..p.clone()
    };
    store.put_project(&other).await.unwrap();
    // A replace keeps the owner and the creation time.
    let changed = ProjectRecord {
        name: "web app".into(),
        owner: "key_x".into(),
        created_at: 99,
        updated_at: 5,
        ..p.clone()
    };
    store.put_project(&changed).await.unwrap();
    let got = store.get_project("proj_1").await.unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.owner.as_str(), got.created_at),
        ("web app", "key_a", 1)
    );
    let of_a = store.list_projects(Some("key_a")).await.unwrap();
    assert_eq!(of_a.len(), 1);
    assert_eq!(store.list_projects(None).await.unwrap()[0].id, "proj_2");

    let s = add(store, 10).await;
    let t = add(store, 11).await;
    store
        .set_session_project(&s.id, Some("proj_1"))
        .await
        .unwrap();
    assert!(store
        .set_session_project("ghost", Some("proj_1"))
        .await
        .is_err());
    assert_eq!(store.count_project_sessions("proj_1").await.unwrap(), 1);
    let m = store
        .session_projects(&[s.id.clone(), t.id.clone()])
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[&s.id], "proj_1");
    let page = store
        .list_sessions(&SessionFilter {
            project_id: Some("proj_1".into()),
            ..SessionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    // update_session leaves the project alone.
    store.update_session(&s).await.unwrap();
    assert_eq!(store.count_project_sessions("proj_1").await.unwrap(), 1);
    assert!(store.delete_project("proj_1").await.unwrap());
    assert!(!store.delete_project("proj_1").await.unwrap());
}
