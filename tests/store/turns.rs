//! A finished turn's records, written together by `record_turn`.

use ccgw::store::{status, StoreError, TurnEnd, TurnRecord, TurnRow};
use serde_json::json;

use crate::{add, session_at, tool_call, usage, Fixture};

/// A compatible conversation's first turn creates its record, takes its history key, and
/// writes its usage, tool calls and history; its next turn moves the row on and numbers its
/// entries after the first turn's.
pub(crate) async fn a_turn_is_recorded_whole(f: Fixture) {
    let store = &*f.store;
    let other = add(store, 1).await;
    store.set_history_key(&other.id, Some("k1")).await.unwrap();
    let mut s = session_at(2);
    s.title = Some("kept".into());
    let first = TurnRecord {
        session_id: s.id.clone(),
        row: TurnRow::Create(s.clone()),
        history_key: Some(Some("k1".into())),
        usage: Some(usage(&s.id, "u1", Some(0.5))),
        tool_calls: vec![tool_call(&s.id, "toolu_1", 3)],
        turn_id: "t1".into(),
        events: vec![
            ("user", json!({"text": "hi"})),
            ("assistant", json!({"text": "yo"})),
        ],
    };
    store.record_turn(&first).await.expect("first turn");
    let found = store.find_session_by_history_key("k1").await.unwrap();
    assert_eq!(
        found.map(|s| s.id),
        Some(s.id.clone()),
        "the key moved to it"
    );
    assert_eq!(f.count("usage", &s.id).await, 1);
    assert_eq!(f.count("tool_calls", &s.id).await, 1);
    let events = store.list_events(&s.id, 0, 100).await.unwrap();
    let seqs: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(seqs, [(1, "user"), (2, "assistant")]);

    let second = TurnRecord {
        session_id: s.id.clone(),
        row: TurnRow::End(TurnEnd {
            status: status::AWAITING_TOOLS.into(),
            cli_session_id: "cli-2".into(),
            workspace: "/tmp/ws2".into(),
            transcript_leaf: Some("leaf-2".into()),
            turn_mark: Some("mark-2".into()),
        }),
        history_key: Some(None),
        usage: Some(usage(&s.id, "u2", None)),
        turn_id: "t2".into(),
        events: vec![("result", json!({"text": "done"}))],
        ..TurnRecord::default()
    };
    store.record_turn(&second).await.expect("second turn");
    let now = store.get_session(&s.id).await.unwrap().unwrap();
    assert_eq!(now.status, status::AWAITING_TOOLS);
    assert_eq!(now.cli_session_id, "cli-2");
    assert_eq!(now.workspace, "/tmp/ws2");
    assert_eq!(now.transcript_leaf.as_deref(), Some("leaf-2"));
    assert_eq!(now.turn_mark.as_deref(), Some("mark-2"));
    assert_eq!(now.history_key, None, "the key was cleared");
    assert_eq!(
        now.title.as_deref(),
        Some("kept"),
        "what a turn does not set stays"
    );
    assert_eq!(f.count("usage", &s.id).await, 2);
    let last = store.list_events(&s.id, 2, 100).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].seq, last[0].turn_id.as_str()), (3, "t2"));
}

/// A turn's records are all written or none: a tool call naming no session fails the turn,
/// and the row, the key, the usage and the history stay as they were.
pub(crate) async fn a_turn_is_recorded_all_or_nothing(f: Fixture) {
    let store = &*f.store;
    let s = add(store, 1).await;
    let holder = add(store, 2).await;
    store.set_history_key(&holder.id, Some("k1")).await.unwrap();
    let bad = TurnRecord {
        session_id: s.id.clone(),
        row: TurnRow::End(TurnEnd {
            status: status::IDLE.into(),
            cli_session_id: "changed".into(),
            workspace: s.workspace.clone(),
            ..TurnEnd::default()
        }),
        history_key: Some(Some("k1".into())),
        usage: Some(usage(&s.id, "u1", None)),
        tool_calls: vec![tool_call("ghost", "toolu_1", 3)],
        turn_id: "t1".into(),
        events: vec![("user", json!({"text": "hi"}))],
    };
    let err = store.record_turn(&bad).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let now = store.get_session(&s.id).await.unwrap().unwrap();
    assert_eq!(now.cli_session_id, s.cli_session_id);
    let found = store.find_session_by_history_key("k1").await.unwrap();
    assert_eq!(found.map(|s| s.id), Some(holder.id.clone()));
    assert_eq!(f.count("usage", &s.id).await, 0);
    assert_eq!(f.count("events", &s.id).await, 0);

    // A turn's end for a session that is gone is refused, and writes nothing either.
    let gone = TurnRecord {
        session_id: "ghost".into(),
        row: TurnRow::End(TurnEnd::default()),
        ..bad.clone()
    };
    let err = store.record_turn(&gone).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

/// A failed first turn's record is made unless the conversation has one; an existing one
/// keeps its fields, and the turn's history is added to it either way.
pub(crate) async fn a_failed_turn_creates_its_record_only_when_missing(f: Fixture) {
    let store = &*f.store;
    let mut fresh = session_at(1);
    fresh.status = status::ERROR.into();
    let record = |s: &ccgw::store::Session| TurnRecord {
        session_id: s.id.clone(),
        row: TurnRow::CreateIfMissing(s.clone()),
        turn_id: "t1".into(),
        events: vec![("error", json!({"message": "boom"}))],
        ..TurnRecord::default()
    };
    store.record_turn(&record(&fresh)).await.expect("created");
    assert_eq!(
        store.get_session(&fresh.id).await.unwrap().unwrap().status,
        status::ERROR
    );

    let kept = add(store, 2).await;
    let mut again = kept.clone();
    again.status = status::CLOSED.into();
    again.model = "other".into();
    store.record_turn(&record(&again)).await.expect("kept");
    let now = store.get_session(&kept.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status.as_str(), now.model.as_str()),
        (kept.status.as_str(), "sonnet")
    );
    assert_eq!(f.count("events", &kept.id).await, 1);
    assert_eq!(f.count("events", &fresh.id).await, 1);
}
