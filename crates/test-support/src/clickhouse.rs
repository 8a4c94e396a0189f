//! A private ClickHouse server for tests (Debian's 18.16 or newer): its own config, data and ports in a
//! temporary directory, killed and removed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ClickHouseServer {
    /// The HTTP interface, `http://127.0.0.1:{port}`.
    pub url: String,
    port: u16,
    engine: Engine,
    dir: tempfile::TempDir,
    child: Child,
}

/// What serves the HTTP interface.
#[derive(Clone)]
enum Engine {
    /// `clickhouse-server` (Debian's 18.16, the oldest release the schema supports).
    Server(&'static str),
    /// The current ClickHouse engine through chDB, behind `ch_shim.py` run by this Python.
    Chdb(String),
}

fn users_xml() -> &'static str {
    r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"#
}

impl ClickHouseServer {
    pub fn start() -> ClickHouseServer {
        let bin = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("clickhouse-server is installed (apt-get install clickhouse-server; scripts/test does it)");
        let dir = tempfile::Builder::new().prefix("langsight-ch").tempdir_in("/tmp").expect("temporary directory");
        let d = dir.path().display().to_string();
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("ClickHouse directories");
        }
        let (http, tcp) = (crate::redis::free_port(), crate::redis::free_port());
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mark_cache_size>67108864</mark_cache_size>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
</yandex>
"#
        );
        std::fs::write(dir.path().join("config.xml"), config).expect("ClickHouse config");
        std::fs::write(dir.path().join("users.xml"), users_xml()).expect("ClickHouse users");
        let engine = Engine::Server(bin);
        let child = spawn(&engine, dir.path(), http);
        wait(http);
        ClickHouseServer { url: format!("http://127.0.0.1:{http}"), port: http, engine, dir, child }
    }

    /// The current ClickHouse engine (chDB, from PyPI) behind a small HTTP shim, so the schema and queries are
    /// also proved on today's releases. The Python is `$LANGSIGHT_TEST_CHDB_PYTHON` (scripts/test makes a venv
    /// with chdb-core).
    pub fn start_current() -> ClickHouseServer {
        let python = std::env::var("LANGSIGHT_TEST_CHDB_PYTHON").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            format!("{home}/.cache/langsight-test-chdb/bin/python")
        });
        assert!(
            std::path::Path::new(&python).exists(),
            "chDB is not installed; run ./scripts/test (it makes the venv) or set LANGSIGHT_TEST_CHDB_PYTHON"
        );
        let dir = tempfile::Builder::new().prefix("langsight-chdb").tempdir_in("/tmp").expect("temporary directory");
        let http = crate::redis::free_port();
        let engine = Engine::Chdb(python);
        let child = spawn(&engine, dir.path(), http);
        wait(http);
        ClickHouseServer { url: format!("http://127.0.0.1:{http}"), port: http, engine, dir, child }
    }

    /// Stops the server (an outage); [`ClickHouseServer::restart`] brings it back with its data.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and removes its directory, for a server kept in a `static` (never dropped): call it from
    /// [`crate::at_exit`].
    pub fn shut_down(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    pub fn restart(&mut self) {
        self.child = spawn(&self.engine, self.dir.path(), self.port);
        wait(self.port);
    }
}

fn spawn(engine: &Engine, dir: &std::path::Path, port: u16) -> Child {
    let mut cmd = match engine {
        Engine::Server(bin) => {
            let mut c = Command::new(bin);
            c.arg(format!("--config-file={}/config.xml", dir.display()));
            c
        }
        Engine::Chdb(python) => {
            let mut c = Command::new(python);
            c.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ch_shim.py")).arg(dir.join("data")).arg(port.to_string());
            c
        }
    };
    cmd.current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("the ClickHouse engine starts")
}

/// Waits for the engine's /ping. Generous: with the whole suite running on two cores a server (or the chDB shim's
/// Python import) took over 30 s to answer once.
fn wait(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ping(port) {
        assert!(Instant::now() < deadline, "ClickHouse did not answer /ping on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = s.write_all(b"GET /ping HTTP/1.0\r\n\r\n");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.contains("Ok.")
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
