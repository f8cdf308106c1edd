//! External MCP servers (issue 17 §1): a configured stdio server (the project's own
//! `ccgw-mcp-test-server`) enabled by name in a native session and on the OpenAI API, its tool
//! offered to the model, called and answered; unknown names and client URLs refused; the
//! servers' status, reconnect and toggle; and the warm pool kept for sessions without servers.
//! Real CLI, mock upstream, the gateway's defaults (warm pool on) unless said otherwise.

mod common;

use std::time::Duration;

use ccgw::config::Config;
use ccgw::domain::mcp::{McpKind, McpServerConfig};
use common::*;
use serde_json::{json, Value};

/// A gateway variable the test server's `MCP_TEST_TAG` is taken from, and its value: one the
/// CLI's own environment never carries, so seeing it proves the mapping.
fn tag_source() -> (String, String) {
    ["CARGO_PKG_NAME", "CARGO_MANIFEST_DIR", "HOME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .expect("a variable to map")
}

fn with_probe(c: &mut Config) {
    c.mcp_servers.insert(
        "probe".into(),
        McpServerConfig {
            kind: McpKind::Stdio,
            command: Some(env!("CARGO_BIN_EXE_ccgw-mcp-test-server").into()),
            args: vec![],
            env: [("MCP_TEST_TAG".to_string(), tag_source().0)].into(),
            url: None,
            headers: Default::default(),
            headers_env: Default::default(),
        },
    );
}

fn tool_names(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect()
}

/// The server entry `name` of a `/mcp` answer.
fn server<'a>(mcp: &'a Value, name: &str) -> &'a Value {
    mcp["mcpServers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no server {name} in {mcp}"))
}

#[tokio::test]
async fn a_session_enabling_the_stdio_server_calls_its_tool_and_manages_it() {
    let app = spawn_defaults_app_with(with_probe).await;
    let id = create_session(
        &app,
        json!({"mcp_servers": ["probe"], "allowed_tools": ["mcp__probe"]}),
    )
    .await;
    let (_, info) = app
        .request("GET", &format!("/api/sessions/{id}"), None, None)
        .await;
    assert_eq!(info["mcp_servers"], json!(["probe"]), "{info}");

    let reply = send_message(&app, &id, r#"[[tool:mcp__probe__echo {"text":"hi"}]]"#).await;
    let first = &app.model_requests()[0].body;
    let offered = tool_names(first);
    assert!(
        offered.contains(&"mcp__probe__echo".to_string())
            && offered.contains(&"mcp__probe__env_names".to_string()),
        "{offered:?}"
    );
    let want = format!("ECHO:hi TAG:{}", tag_source().1);
    assert!(
        reply["text"].as_str().unwrap_or("").contains(&want),
        "{reply}"
    );
    assert!(reply["tool_results"].to_string().contains(&want), "{reply}");

    // The server runs with the CLI's clean environment minus the relay's variables, plus the
    // one variable named for it.
    let reply = send_message(&app, &id, "[[tool:mcp__probe__env_names {}]]").await;
    let names = reply["tool_results"].to_string();
    assert!(names.contains("MCP_TEST_TAG"), "{names}");
    assert!(names.contains("PATH"), "{names}");
    for secret in [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_AUTH_TOKEN",
        "CCGW_",
    ] {
        assert!(
            !names.contains(secret),
            "{secret} reached the server: {names}"
        );
    }

    // Its state and tools, without its configuration's internals.
    let (status, mcp) = app
        .request("GET", &format!("/api/sessions/{id}/mcp"), None, None)
        .await;
    assert_eq!(status, 200, "{mcp}");
    let probe = server(&mcp, "probe");
    assert_eq!(probe["status"], "connected", "{mcp}");
    assert!(
        probe["tools"].to_string().contains("mcp__probe__echo"),
        "{mcp}"
    );
    assert_eq!(probe["config"]["type"], "stdio", "{mcp}");
    assert!(!mcp.to_string().contains("\"-u\""), "{mcp}");

    // The list of configured servers knows its tools from this session's process.
    let list = app.get_json("/api/mcp-servers").await;
    let entry = &list["data"][0];
    assert_eq!(entry["name"], "probe", "{list}");
    assert_eq!(entry["env"], json!(["MCP_TEST_TAG"]), "{list}");
    assert!(entry["tools"].to_string().contains("env_names"), "{list}");

    // Toggle off: the CLI reports it disabled, and the model no longer gets its tools.
    let (status, off) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/mcp/probe/toggle"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["status"], "disabled", "{off}");
    send_message(&app, &id, "[[text:without tools]]").await;
    let offered = tool_names(&app.last_model_request());
    assert!(
        !offered.iter().any(|t| t.starts_with("mcp__probe__")),
        "{offered:?}"
    );
    let (status, on) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/mcp/probe/toggle"),
            Some(&json!({"enabled": true})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["status"], "connected", "{on}");

    let (status, again) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/mcp/probe/reconnect"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["status"], "connected", "{again}");
    let reply = send_message(&app, &id, r#"[[tool:mcp__probe__echo {"text":"back"}]]"#).await;
    assert!(
        reply["text"].as_str().unwrap_or("").contains("ECHO:back"),
        "{reply}"
    );

    // A server the session does not have is a 404 naming it.
    let (status, err) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/mcp/other/reconnect"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 404, "{err}");
    assert!(err.to_string().contains("'other'"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn the_compatible_apis_enable_a_server_in_the_body() {
    let app = spawn_defaults_app_with(with_probe).await;
    let (status, body) = app
        .chat(json!({
            "model": "sonnet",
            "messages": [user(r#"[[tool:mcp__probe__echo {"text":"oa"}]]"#)],
            "mcp_servers": ["probe"],
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(content.contains("ECHO:oa"), "{body}");
    assert!(tool_names(&app.model_requests()[0].body).contains(&"mcp__probe__echo".to_string()));
    // No server, no tool: the same prompt finds nothing to call.
    let (status, body) = app
        .chat(json!({
            "model": "sonnet",
            "messages": [user(r#"plain [[tool:mcp__probe__echo {"text":"x"}]]"#)],
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!tool_names(&app.last_model_request()).contains(&"mcp__probe__echo".to_string()));
    // The Anthropic endpoint takes the same field.
    let (status, body) = app
        .anthropic(json!({
            "model": "sonnet",
            "max_tokens": 100,
            "messages": [user(r#"[[tool:mcp__probe__echo {"text":"an"}]]"#)],
            "mcp_servers": ["probe"],
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["content"].to_string().contains("ECHO:an"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_server_names_are_refused_naming_them() {
    let app = spawn_app_with(with_probe).await;
    let (status, err) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"mcp_servers": ["probe", "nope"]})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("'nope'") && text.contains("mcp_servers["),
        "{err}"
    );

    let (status, err) = app
        .chat(json!({"model": "sonnet", "messages": [user("hi")], "mcp_servers": ["nope"]}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "mcp_servers[0]", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("'nope'"),
        "{err}"
    );

    let (status, err) = app
        .anthropic(json!({"model": "sonnet", "max_tokens": 10,
            "messages": [user("hi")], "mcp_servers": "probe"}))
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("mcp_servers"),
        "{err}"
    );
    assert!(app.model_requests().is_empty(), "nothing reached the model");
    app.stop().await;
}

#[tokio::test]
async fn client_urls_are_refused_by_default_and_off_the_allowlist() {
    let remote = |url: &str| json!({"mcp_servers": [{"name": "remote", "url": url}]});
    let app = spawn_app().await;
    let (status, err) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&remote("https://tools.example.com/mcp")),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("not allowed"), "{err}");
    let mut chat = remote("https://tools.example.com/mcp");
    chat["model"] = json!("sonnet");
    chat["messages"] = json!([user("hi")]);
    let (status, err) = app.chat(chat).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["param"], "mcp_servers[0].url", "{err}");
    app.stop().await;

    let app = spawn_app_with(|c| {
        c.client_mcp_urls = true;
        c.client_mcp_hosts = vec!["tools.example.com".into()];
    })
    .await;
    for bad in [
        "http://127.0.0.1:9/mcp",
        "http://169.254.169.254/latest/meta-data",
        "https://tools.example.com.attacker.net/mcp",
    ] {
        let (status, err) = app
            .request("POST", "/api/sessions", Some(&remote(bad)), None)
            .await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert!(err.to_string().contains("allowlist"), "{err}");
    }
    let (status, ok) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&remote("https://tools.example.com/mcp")),
            None,
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!(ok["mcp_servers"][0]["url"], "https://tools.example.com/mcp");
    app.stop().await;
}

#[tokio::test]
async fn sessions_without_servers_keep_the_warm_pool() {
    let app = spawn_defaults_app_with(with_probe).await;
    assert!(
        wait_for(|| app.pool().warm_count() >= 1, Duration::from_secs(30)).await,
        "a warm process starts"
    );
    // Warm processes are kept for the `warm_models` (sonnet by default).
    let plain = create_session(&app, json!({"model": "sonnet"})).await;
    send_message(&app, &plain, "[[text:warm]]").await;
    assert_eq!(
        app.pool().warm_hit_count(),
        1,
        "the plain session took a warm process"
    );
    assert_eq!(app.pool().cold_spawn_count(), 0);

    // A session with a server is another launch: a process of its own, the warm one untouched.
    let with = create_session(&app, json!({"model": "sonnet", "mcp_servers": ["probe"]})).await;
    send_message(&app, &with, "[[text:cold]]").await;
    assert_eq!(app.pool().warm_hit_count(), 1);
    assert_eq!(app.pool().cold_spawn_count(), 1);
    let cmdlines = app.cli_cmdlines();
    let with_config: Vec<&String> = cmdlines
        .iter()
        .filter(|c| c.contains("--mcp-config="))
        .collect();
    assert_eq!(with_config.len(), 1, "{cmdlines:?}");
    // The config is a file: no server's settings on the command line.
    assert!(!with_config[0].contains("mcpServers"), "{with_config:?}");
    app.stop().await;
}

#[tokio::test]
async fn the_server_list_asks_a_probe_process_when_no_session_has_used_them() {
    let app = spawn_app_with(with_probe).await;
    let list = app.get_json("/api/mcp-servers").await;
    let entry = &list["data"][0];
    assert_eq!(entry["name"], "probe", "{list}");
    assert_eq!(entry["status"], "connected", "{list}");
    let tools = entry["tools"].to_string();
    assert!(
        tools.contains("mcp__probe__echo") && tools.contains("env_names"),
        "{list}"
    );
    assert_eq!(list["client_mcp_urls"], false);
    // The probe is gone again and left no workspace behind.
    assert!(
        wait_for(|| app.live() == 0, Duration::from_secs(10)).await,
        "the probe process stopped"
    );
    let left: Vec<_> = std::fs::read_dir(app.cfg.data_dir.join("workspaces"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_native_session_is_asked_about_server_tools_it_did_not_allow() {
    let app = spawn_app_with(with_probe).await;
    let id = create_session(&app, json!({"mcp_servers": ["probe"]})).await;
    let (status, reply) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/messages"),
            Some(&json!({"content": r#"[[tool:mcp__probe__echo {"text":"ask"}]]"#})),
            None,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["stop_reason"], "permission_required", "{reply}");
    let req = &reply["permission_requests"][0];
    assert_eq!(req["tool_name"], "mcp__probe__echo", "{reply}");
    let rid = req["request_id"].as_str().unwrap();
    let (status, _) = app
        .request(
            "POST",
            &format!("/api/sessions/{id}/permissions/{rid}"),
            Some(&json!({"behavior": "deny", "message": "not this one"})),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // The model gets the refusal as the tool's result; the server never ran.
    assert!(
        wait_for(
            || app
                .model_requests()
                .iter()
                .any(|r| r.body["messages"].to_string().contains("not this one")),
            Duration::from_secs(20)
        )
        .await,
        "the model saw the refusal"
    );
    assert!(!app
        .model_requests()
        .iter()
        .any(|r| r.body["messages"].to_string().contains("ECHO:ask")));
    // An allowed_tools entry must belong to an enabled server.
    let (status, err) = app
        .request(
            "POST",
            "/api/sessions",
            Some(&json!({"mcp_servers": ["probe"], "allowed_tools": ["mcp__other"]})),
            None,
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("allowed_tools"), "{err}");
    app.stop().await;
}

/// The test server over Streamable HTTP, on a loopback port; killed when dropped.
struct HttpServer {
    child: std::process::Child,
    url: String,
}

impl HttpServer {
    fn start() -> HttpServer {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ccgw-mcp-test-server"))
            .arg("--http")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the test server starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("an address");
        HttpServer {
            child,
            url: format!("http://{addr}/mcp"),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_http_server_gets_its_header_from_the_environment_and_never_shows_it() {
    let web = HttpServer::start();
    let (var, secret) = tag_source();
    let url = web.url.clone();
    let app = spawn_defaults_app_with(move |c| {
        c.mcp_servers.insert(
            "web".into(),
            McpServerConfig {
                kind: McpKind::Http,
                command: None,
                args: vec![],
                env: Default::default(),
                url: Some(url),
                headers: Default::default(),
                headers_env: [("Authorization".to_string(), var)].into(),
            },
        );
    })
    .await;
    let id = create_session(
        &app,
        json!({"mcp_servers": ["web"], "allowed_tools": ["mcp__web__echo"]}),
    )
    .await;
    let reply = send_message(&app, &id, r#"[[tool:mcp__web__echo {"text":"net"}]]"#).await;
    let want = format!("ECHO:net AUTH:{secret}");
    assert!(
        reply["text"].as_str().unwrap_or("").contains(&want),
        "{reply}"
    );
    // The CLI's own status holds the header's value; the gateway's answers never do.
    let (status, mcp) = app
        .request("GET", &format!("/api/sessions/{id}/mcp"), None, None)
        .await;
    assert_eq!(status, 200, "{mcp}");
    let web_entry = server(&mcp, "web");
    assert_eq!(web_entry["status"], "connected", "{mcp}");
    assert_eq!(
        web_entry["config"]["headers"],
        json!(["Authorization"]),
        "{mcp}"
    );
    let list = app.get_json("/api/mcp-servers").await;
    for shown in [mcp.to_string(), list.to_string()] {
        assert!(
            !shown.contains(&secret),
            "the header's value was shown: {shown}"
        );
    }
    assert!(
        list["data"][0]["tools"]
            .to_string()
            .contains("mcp__web__echo"),
        "{list}"
    );
    app.stop().await;
}
