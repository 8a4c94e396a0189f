//! Real Redis servers for tests: standalone with a password, TLS-only, Sentinel (primary + replica + 3
//! sentinels) and Cluster (3 masters), each on free loopback ports in a private directory, killed on drop.
//! Uses Debian's `redis-server`, `redis-cli` and `openssl` (installed by `scripts/test`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "test-redis-pass";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Standalone,
    Tls,
    Sentinel,
    Cluster,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Standalone, Kind::Tls, Kind::Sentinel, Kind::Cluster];
}

pub struct RedisTopology {
    pub kind: Kind,
    /// `LANGSIGHT_REDIS_URL` for this topology (password included).
    pub url: String,
    /// CA certificate for TLS topologies.
    pub ca_file: Option<PathBuf>,
    /// Data-node ports (primary first for Sentinel).
    pub ports: Vec<u16>,
    pub sentinel_ports: Vec<u16>,
    procs: Vec<(u16, Child)>,
    dir: tempfile::TempDir,
}

impl Drop for RedisTopology {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port whose +10000 sibling is free too (the cluster bus), below the ephemeral range.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let p: u16 = rng.gen_range(12000..22700);
        let ok = std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok();
        if ok {
            return p;
        }
    }
    panic!("no free port pair found for a test Redis");
}

fn wait_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn cli(port: u16, tls: Option<&Path>, auth: bool, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(ca) = tls {
        cmd.arg("--tls").arg("--cacert").arg(ca);
    }
    if auth {
        cmd.env("REDISCLI_AUTH", PASSWORD);
    } else {
        cmd.env_remove("REDISCLI_AUTH");
    }
    let out = cmd.args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl RedisTopology {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn_server(&mut self, port: u16, extra: &[String]) {
        let dir = self.dir.path().to_path_buf();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            dir.join(format!("redis-{port}.log")).display().to_string(),
            "--requirepass".into(),
            PASSWORD.into(),
            "--masterauth".into(),
            PASSWORD.into(),
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        args.extend(extra.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        self.procs.push((port, child));
    }

    fn wait_ping(&self, port: u16) {
        let ca = self.ca_file.clone();
        wait_until(&format!("redis on {port}"), Duration::from_secs(10), || {
            cli(port, ca.as_deref(), true, &["ping"]).is_some_and(|o| o.contains("PONG"))
        });
    }

    fn empty(kind: Kind) -> RedisTopology {
        RedisTopology {
            kind,
            url: String::new(),
            ca_file: None,
            ports: vec![],
            sentinel_ports: vec![],
            procs: vec![],
            dir: tempfile::tempdir().expect("temp dir for redis"),
        }
    }

    pub fn start(kind: Kind) -> RedisTopology {
        match kind {
            Kind::Standalone => Self::standalone(),
            Kind::Tls => Self::tls(),
            Kind::Sentinel => Self::sentinel(),
            Kind::Cluster => Self::cluster(),
        }
    }

    pub fn standalone() -> RedisTopology {
        let mut t = Self::empty(Kind::Standalone);
        let port = free_port();
        t.spawn_server(port, &["--port".into(), port.to_string()]);
        t.wait_ping(port);
        t.ports = vec![port];
        t.url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/0");
        t
    }

    pub fn tls() -> RedisTopology {
        let mut t = Self::empty(Kind::Tls);
        let d = t.dir.path().to_path_buf();
        make_certs(&d);
        t.ca_file = Some(d.join("ca.crt"));
        let port = free_port();
        let p = |f: &str| d.join(f).display().to_string();
        t.spawn_server(
            port,
            &[
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                p("server.crt"),
                "--tls-key-file".into(),
                p("server.key"),
                "--tls-ca-cert-file".into(),
                p("ca.crt"),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
        );
        t.wait_ping(port);
        t.ports = vec![port];
        t.url = format!("rediss://:{PASSWORD}@localhost:{port}/0");
        t
    }

    pub fn sentinel() -> RedisTopology {
        let mut t = Self::empty(Kind::Sentinel);
        let (primary, replica) = (free_port(), free_port());
        t.spawn_server(primary, &["--port".into(), primary.to_string()]);
        t.spawn_server(
            replica,
            &["--port".into(), replica.to_string(), "--replicaof".into(), "127.0.0.1".into(), primary.to_string()],
        );
        t.wait_ping(primary);
        t.wait_ping(replica);
        wait_until("replica link", Duration::from_secs(10), || {
            cli(replica, None, true, &["info", "replication"]).is_some_and(|o| o.contains("master_link_status:up"))
        });
        let d = t.dir.path().to_path_buf();
        for _ in 0..3 {
            let s = free_port();
            let conf = d.join(format!("sentinel-{s}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {s}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel-{s}.log\n\
                     sentinel monitor mymaster 127.0.0.1 {primary} 2\nsentinel auth-pass mymaster {PASSWORD}\n\
                     sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n\
                     sentinel parallel-syncs mymaster 1\n",
                    dir = d.display()
                ),
            )
            .expect("sentinel config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel runs (apt-get install redis-sentinel)");
            t.procs.push((s, child));
            t.sentinel_ports.push(s);
        }
        for s in t.sentinel_ports.clone() {
            wait_until("sentinels to find each other", Duration::from_secs(20), || {
                cli(s, None, false, &["sentinel", "master", "mymaster"]).is_some_and(|o| {
                    let flat = o.replace('\n', " ");
                    flat.contains("num-slaves 1 ") && flat.contains("num-other-sentinels 2 ")
                })
            });
        }
        t.ports = vec![primary, replica];
        let hosts: Vec<String> = t.sentinel_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        t.url = format!("redis+sentinel://:{PASSWORD}@{}/mymaster/0", hosts.join(","));
        t
    }

    pub fn cluster() -> RedisTopology {
        let mut t = Self::empty(Kind::Cluster);
        let d = t.dir.path().to_path_buf();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for p in &ports {
            t.spawn_server(
                *p,
                &[
                    "--port".into(),
                    p.to_string(),
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    d.join(format!("nodes-{p}.conf")).display().to_string(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ],
            );
        }
        for p in &ports {
            t.wait_ping(*p);
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = Command::new("timeout");
        create.args(["30", "redis-cli", "--cluster", "create"]).args(&nodes).arg("--cluster-yes");
        let out = create.env("REDISCLI_AUTH", PASSWORD).stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(out.is_ok_and(|s| s.success()), "redis-cli --cluster create failed");
        for p in &ports {
            wait_until("cluster_state:ok", Duration::from_secs(20), || {
                cli(*p, None, true, &["cluster", "info"]).is_some_and(|o| o.contains("cluster_state:ok"))
            });
        }
        t.ports = ports;
        t.url = format!("redis+cluster://:{PASSWORD}@{}", nodes.join(","));
        t
    }

    /// `kill -9` of a data node (the primary for Sentinel, the only server otherwise).
    pub fn kill_node(&mut self, port: u16) {
        if let Some((_, c)) = self.procs.iter_mut().find(|(p, _)| *p == port) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.retain(|(p, _)| *p != port);
    }

    /// Restarts a standalone server on its old port (empty: nothing is persisted).
    pub fn restart_standalone(&mut self) {
        let port = self.ports[0];
        self.spawn_server(port, &["--port".into(), port.to_string()]);
        self.wait_ping(port);
    }

    /// Every key under `pattern` with its TTL in ms (-1 = none), on every data node.
    pub fn keys_with_ttl(&self, pattern: &str) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let nodes: Vec<u16> = match self.kind {
            Kind::Sentinel => vec![self.ports[0]],
            _ => self.ports.clone(),
        };
        for port in nodes {
            let Some(list) = cli(port, self.ca_file.as_deref(), true, &["--scan", "--pattern", pattern]) else {
                continue;
            };
            for key in list.lines().filter(|l| !l.is_empty()) {
                let ttl = cli(port, self.ca_file.as_deref(), true, &["pttl", key])
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(-3);
                out.push((key.to_string(), ttl));
            }
        }
        out
    }

    /// Runs a redis-cli command against the first data node.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        cli(self.ports[0], self.ca_file.as_deref(), true, args)
    }

    /// Runs a redis-cli command against a sentinel.
    pub fn sentinel_cli(&self, args: &[&str]) -> Option<String> {
        cli(*self.sentinel_ports.first()?, None, false, args)
    }

    /// The master's port as each sentinel reports it (`SENTINEL GET-MASTER-ADDR-BY-NAME mymaster`), in
    /// sentinel order; `None` for a sentinel that does not answer.
    pub fn masters_seen_by_sentinels(&self) -> Vec<Option<u16>> {
        self.sentinel_ports
            .iter()
            .map(|s| {
                let out = cli(*s, None, false, &["sentinel", "get-master-addr-by-name", "mymaster"])?;
                out.lines().nth(1)?.trim().parse().ok()
            })
            .collect()
    }

    /// The first line of `ROLE` on a data node (`master`, `slave`), `None` when it does not answer.
    pub fn role(&self, port: u16) -> Option<String> {
        cli(port, self.ca_file.as_deref(), true, &["role"]).and_then(|o| o.lines().next().map(str::to_string))
    }

    /// Blocks until every sentinel names `port` as the master and that node says it is one. The deadline only
    /// guards against a hang (an election that failed once is retried after 2 × failover-timeout): the caller
    /// waits on the sentinels' view, not on a guess of how long an election takes.
    pub fn wait_for_promotion(&self, port: u16, guard: Duration) {
        let start = Instant::now();
        loop {
            let seen = self.masters_seen_by_sentinels();
            let role = self.role(port);
            if seen.iter().all(|m| *m == Some(port)) && role.as_deref() == Some("master") {
                return;
            }
            assert!(
                start.elapsed() < guard,
                "no promotion of {port} within {guard:?}: sentinels see {seen:?}, its role is {role:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn make_certs(d: &Path) {
    let run = |args: &[&str]| {
        let ok = Command::new("openssl").args(args).current_dir(d).stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(ok.is_ok_and(|s| s.success()), "openssl {args:?} failed (apt-get install openssl)");
    };
    run(&[
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=langsight-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("cert extension file");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "30",
        "-extfile",
        "server.ext",
    ]);
}
