//! Races: a delete racing a message wins or loses cleanly and leaves nothing behind; a
//! session served by a warm process keeps a transcript it can fork and resume.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn a_delete_racing_a_message_wins_or_loses_cleanly() {
    let app = spawn_defaults().await;
    let c = &app.client;
    for round in 0..50u64 {
        let id = new_session(c, &app.url, json!({"model": "sonnet"})).await;
        let base = app.url.clone();
        // The delete, and around it a message, a read and another message a moment apart.
        let delete = c.delete(format!("{base}/api/sessions/{id}")).send();
        let later = |ms: u64| tokio::time::sleep(Duration::from_micros(ms * 300 + round * 20));
        let message = async { say(c, &base, &id, json!(format!("race {round}"))).await };
        let read = async {
            later(1).await;
            c.get(format!("{base}/api/sessions/{id}"))
                .send()
                .await
                .unwrap()
                .status()
        };
        let again = async {
            later(2).await;
            say(c, &base, &id, json!("right after")).await
        };
        let (deleted, _, _, _) = tokio::join!(delete, message, read, again);
        assert_eq!(deleted.unwrap().status().as_u16(), 204, "round {round}");
        // Deleted means deleted: no record, no new messages, no workspace.
        let gone = c
            .get(format!("{base}/api/sessions/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status().as_u16(), 404, "round {round}: resurrected");
        let (status, _) = say(c, &base, &id, json!("after the delete")).await;
        assert_eq!(status, 404, "round {round}: a message ran after the delete");
    }
    // Every directory left is a warm process's own.
    assert_at_rest(&app, "after the races").await;
    let dirs = workspace_dirs(app.data.path());
    assert!(
        wait_for(
            || workspace_dirs(app.data.path()).len() == app.cfg.warm_pool_size,
            Duration::from_secs(10)
        )
        .await,
        "workspace directories left behind: {dirs:?}"
    );
    let list = app.get_json("/api/sessions").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    app.stop().await;
}

#[tokio::test]
async fn a_session_served_by_a_warm_process_can_fork_and_resume() {
    let mut app = spawn_defaults().await;
    let c = app.client.clone();
    let id = new_session(&c, &app.url, json!({"model": "sonnet"})).await;
    let (status, _) = say(&c, &app.url, &id, json!("the first turn")).await;
    assert_eq!(status, 200);
    assert_eq!(app.pool().warm_hit_count(), 1, "a warm process served it");
    let (status, fork) = post_json(
        &c,
        &format!("{}/api/sessions/{id}/fork", app.url),
        &json!({}),
    )
    .await;
    assert_eq!(status, 201, "{fork}");
    let fork_id = fork["id"].as_str().unwrap().to_string();
    let (status, r) = say(
        &c,
        &app.url,
        &fork_id,
        json!("in the fork [[report:history]]"),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert!(
        r["text"].as_str().unwrap().contains("the first turn"),
        "{r}"
    );
    app.restart().await;
    let (status, r) = say(
        &app.client,
        &app.url,
        &id,
        json!("after restart [[report:history]]"),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(
        text.contains("the first turn"),
        "the first turn survived: {text}"
    );
    assert!(
        !text.contains("in the fork"),
        "the fork never touches the original: {text}"
    );
    app.stop().await;
}
