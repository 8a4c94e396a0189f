//! A private PostgreSQL cluster for tests: `initdb` into a temporary directory, the server on a free loopback
//! port without fsync (tests need speed, and survive process crashes, not machine crashes), trust
//! authentication, stopped and removed when dropped. PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgCluster {
    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub url: String,
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
                .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .expect("PostgreSQL server binaries are installed (apt-get install postgresql; scripts/test does it)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `program args` as the `postgres` user when we are root (setpriv execs, so the PID is the program's).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("langsight-pg").tempdir_in("/tmp").expect("temporary directory");
        if is_root() {
            let uid = id_of("-u");
            let gid = id_of("-g");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the cluster directory to postgres");
        }
        let data = dir.path().join("data");
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = crate::redis::free_port();
        let child = spawn_server(&bin, dir.path(), port);
        wait_ready(&bin, port);
        PgCluster { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), port, bin, dir, child }
    }

    /// Creates a database and returns its URL.
    pub fn database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "CREATE DATABASE failed: {}", String::from_utf8_lossy(&out.stderr));
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once (immediate shutdown: connections are cut, no checkpoint), as in a crash.
    pub fn stop_now(&mut self) {
        let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and data (after [`PgCluster::stop_now`]).
    pub fn restart(&mut self) {
        self.child = spawn_server(&self.bin, self.dir.path(), self.port);
        wait_ready(&self.bin, self.port);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn spawn_server(bin: &Path, dir: &Path, port: u16) -> Child {
    as_postgres(&bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        // fsync off: writes reach the OS page cache, which survives the server process crashing (what outage
        // tests do), but not the machine. synchronous_commit stays on so a commit is written before it returns.
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres starts")
}

fn wait_ready(bin: &Path, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "PostgreSQL did not become ready on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id").args([flag, "postgres"]).output().expect("id runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a postgres user exists (the postgresql package creates it)")
}

impl PgCluster {
    /// Stops the server and removes its directory, for a cluster kept in a `static` (never dropped): call it from
    /// [`crate::at_exit`].
    pub fn shut_down(&self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Not reaped here (that needs the `Child` mutably): a zombie counts as stopped.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
                .unwrap_or(false)
        };
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGQUIT: immediate shutdown; the data is thrown away anyway.
            let _ = Command::new("kill").args(["-QUIT", &self.child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
