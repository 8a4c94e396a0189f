//! `langsight init` and `langsight add`, run as the real binary in a scratch home and project directory:
//! discovery from client config files, deduplication, merging into an existing file, connection tests,
//! and the written file read back by `mcp-health`.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture");
    bin
}

/// Runs the binary with `home` as HOME and working directory, and no LANGSIGHT_* from the caller.
fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_langsight"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(home)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

#[test]
fn init_discovers_client_configs_and_writes_a_checkable_file() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let fx = fixture().display().to_string();
    // Cursor and the project's .mcp.json name the same stdio server (deduplicated); Claude Code adds an HTTP
    // one; VS Code uses `servers` and a list; Zed nests the command and has comments.
    write(&h.join(".cursor/mcp.json"), &json!({"mcpServers": {"fixture": {"command": fx, "args": ["--stdio"]}}}));
    write(&h.join(".mcp.json"), &json!({"mcpServers": {"fixture-again": {"command": fx, "args": ["--stdio"]}}}));
    write(
        &h.join(".claude.json"),
        &json!({"mcpServers": {"remote": {"type": "sse", "url": "http://127.0.0.1:1/events"}}}),
    );
    write(
        &h.join(".config/Code/User/mcp.json"),
        &json!({"servers": [{"name": "docs", "url": "https://docs.example/mcp", "headers": {"Authorization": "Bearer x"}}]}),
    );
    std::fs::create_dir_all(h.join(".config/zed")).unwrap();
    std::fs::write(
        h.join(".config/zed/settings.json"),
        format!("{{\n  // my servers\n  \"context_servers\": {{\"zed-fx\": {{\"command\": {{\"path\": \"{fx}\", \"args\": [\"--stdio\", \"--zed\"]}}}}}}\n}}"),
    )
    .unwrap();
    std::fs::create_dir_all(h.join(".gemini")).unwrap();
    std::fs::write(h.join(".gemini/settings.json"), "{ not json").unwrap();
    // An existing file: its entry wins over a discovered one of the same name, and its other keys survive.
    std::fs::write(
        h.join(".langsight.yaml"),
        "project_id: keep-me\nservers:\n  - name: docs\n    transport: stdio\n    command: /bin/true\n",
    )
    .unwrap();

    let out = run(h, &["init", "--yes", "--skip-check"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("✓  Cursor ("), "{t}");
    assert!(t.contains("✓  Claude Code ("), "{t}");
    assert!(t.contains("⚠  Gemini CLI — parse error"), "{t}");
    assert!(!t.contains("fixture-again"), "the duplicate is dropped: {t}");
    assert!(t.contains("3 server(s) added, 1 already there kept"), "{t}");

    let written: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(h.join(".langsight.yaml")).unwrap()).unwrap();
    assert_eq!(written["project_id"].as_str(), Some("keep-me"));
    let servers = written["servers"].as_sequence().unwrap();
    let by_name = |n: &str| {
        servers.iter().find(|s| s["name"].as_str() == Some(n)).unwrap_or_else(|| panic!("{n} in {servers:?}"))
    };
    assert_eq!(by_name("docs")["command"].as_str(), Some("/bin/true"), "the operator's entry is kept");
    assert_eq!(by_name("fixture")["transport"].as_str(), Some("stdio"));
    assert_eq!(by_name("remote")["transport"].as_str(), Some("sse"), "declared type wins over the path");
    assert_eq!(by_name("zed-fx")["args"][1].as_str(), Some("--zed"));

    // The file is one the server and mcp-health accept: the stdio fixtures are up, the dead URL down.
    let health = run(h, &["mcp-health", "--config", ".langsight.yaml", "--server", "fixture", "--json"]);
    let rows: Value = serde_json::from_slice(&health.stdout).unwrap_or(Value::Null);
    assert_eq!(rows[0]["status"], json!("up"), "{}", text(&health));
}

#[test]
fn init_with_nothing_to_find_says_how_to_add_one() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["init", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("langsight add NAME"), "{}", text(&out));
    assert!(!home.path().join(".langsight.yaml").exists());
}

#[test]
fn add_tests_the_connection_then_writes_the_entry() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let state = h.join("state.json");
    std::fs::write(&state, json!({"tools": [{"name": "alpha", "inputSchema": {"type": "object"}}, {"name": "beta", "inputSchema": {"type": "object"}}], "mode": "ok"}).to_string()).unwrap();
    let fx = fixture().display().to_string();
    let command = format!("{fx} --stdio");
    let env = format!("MCP_FIXTURE_STATE={}", state.display());
    let out = run(h, &["add", "fx", "--command", &command, "--env", &env, "-c", "conf/ls.yaml"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("✓ Connected in "), "{t}");
    assert!(t.contains("✓ 2 tool(s): alpha, beta"), "{t}");
    let yaml = std::fs::read_to_string(h.join("conf/ls.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(doc["servers"][0]["command"].as_str(), Some(fx.as_str()), "the command line is split: {yaml}");
    assert_eq!(doc["servers"][0]["args"][0].as_str(), Some("--stdio"));
    let health = run(h, &["mcp-health", "--config", "conf/ls.yaml"]);
    assert!(health.status.success(), "{}", text(&health));

    // A server that does not answer is not added without --yes; the file is untouched.
    let down = run(h, &["add", "dead", "--url", "http://127.0.0.1:1/mcp", "-c", "conf/ls.yaml"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(text(&down).contains("✗ Connection failed"), "{}", text(&down));
    assert_eq!(std::fs::read_to_string(h.join("conf/ls.yaml")).unwrap(), yaml);
    let forced = run(h, &["add", "dead", "--url", "http://127.0.0.1:1/sse", "-c", "conf/ls.yaml", "--yes"]);
    assert!(forced.status.success(), "{}", text(&forced));
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(h.join("conf/ls.yaml")).unwrap()).unwrap();
    assert_eq!(doc["servers"][1]["transport"].as_str(), Some("sse"));

    // Duplicates need --yes; bad flags are refused with the fix.
    let dup = run(h, &["add", "fx", "--command", "true", "--skip-check", "-c", "conf/ls.yaml"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(text(&dup).contains("pass --yes to overwrite"), "{}", text(&dup));
    let neither = run(h, &["add", "x", "-c", "conf/ls.yaml"]);
    assert!(text(&neither).contains("--url (HTTP) or --command (stdio)"), "{}", text(&neither));
    let bad_env = run(h, &["add", "x", "--command", "true", "--env", "NOEQUALS", "-c", "conf/ls.yaml"]);
    assert!(text(&bad_env).contains("--env expects KEY=VALUE, got 'NOEQUALS'"), "{}", text(&bad_env));
}
