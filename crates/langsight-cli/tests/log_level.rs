//! The log level reaches the binary's log through the configuration's precedence: `--log-level` over
//! `LANGSIGHT_LOG_LEVEL` over yaml `log_level` over `info`, and a level nobody knows refuses the start naming
//! where it came from.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `langsight serve` on a free port with `envs` and `args`, waits until it answers `/api/liveness`
/// (so everything logged up to listening has been logged), stops it and returns its log.
fn log_of(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> String {
    let port = test_support::redis::free_port();
    let log = dir.join(format!("serve-{port}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_langsight"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("LANGSIGHT_SQLITE_PATH", dir.join("langsight.db"))
        // Logged as a warning at start-up: the line every level up to `warn` shows.
        .env("LANGSIGHT_NOT_A_SETTING", "1")
        .current_dir(dir)
        .args(["serve", "--port", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("the langsight binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /api/liveness HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer.starts_with("HTTP/1.1 200")
        });
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not answer: {}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(&log).expect("log")
}

#[test]
fn log_level_follows_flag_then_env_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Logged at `info` before the server listens.
    let info_line = "storage.opened";
    let warn_line = "LANGSIGHT_NOT_A_SETTING is not a LangSight setting";

    let default = log_of(d, &[], &[]);
    assert!(default.contains(info_line) && default.contains(warn_line), "{default}");

    let env_warn = log_of(d, &[("LANGSIGHT_LOG_LEVEL", "warn")], &[]);
    assert!(env_warn.contains(warn_line) && !env_warn.contains(info_line), "{env_warn}");

    let flag_info = log_of(d, &[("LANGSIGHT_LOG_LEVEL", "warn")], &["--log-level", "info"]);
    assert!(flag_info.contains(info_line), "the flag wins over the environment: {flag_info}");

    std::fs::write(d.join("c.yaml"), "log_level: warning\n").unwrap();
    let file = d.join("c.yaml").display().to_string();
    let yaml_warn = log_of(d, &[("LANGSIGHT_CONFIG_PATH", &file)], &[]);
    assert!(yaml_warn.contains(warn_line) && !yaml_warn.contains(info_line), "{yaml_warn}");
    let env_over_yaml = log_of(d, &[("LANGSIGHT_CONFIG_PATH", &file), ("LANGSIGHT_LOG_LEVEL", "info")], &[]);
    assert!(env_over_yaml.contains(info_line), "the environment wins over the file: {env_over_yaml}");

    let out = Command::new(env!("CARGO_BIN_EXE_langsight"))
        .env_clear()
        .env("HOME", d)
        .env("LANGSIGHT_LOG_LEVEL", "chatty")
        .current_dir(d)
        .args(["serve", "--port", "0"])
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LANGSIGHT_LOG_LEVEL=\"chatty\" is invalid"), "{stderr}");
}
