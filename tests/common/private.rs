//! Private PostgreSQL clusters and RabbitMQ nodes for tests that stop and start the real server
//! processes: each lives in its own temporary directory on spare loopback ports, so the machine's
//! own services (5432, 5672) are never touched. Both are stopped (and their files removed) on
//! drop.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start or stop (a RabbitMQ node takes ~10 s on 2 busy cores).
const STARTUP: Duration = Duration::from_secs(90);

/// A port on 127.0.0.1 that was free a moment ago.
pub fn spare_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

/// Waits until `port` accepts connections (`up`) or refuses them (`!up`).
pub async fn wait_for_port(port: u16, up: bool, what: &str) -> Duration {
    let started = Instant::now();
    while accepts(port) != up {
        assert!(
            started.elapsed() < STARTUP,
            "{what}: port {port} not {} within {STARTUP:?}",
            if up { "open" } else { "closed" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Runs a command to completion, panicking with its output when it fails.
async fn run(command: &mut tokio::process::Command, what: &str) {
    let out = command
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL cluster of its own, run by the `postgres` OS user (initdb refuses root).
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    /// `initdb` (trust authentication) and start on a spare port.
    pub async fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        for path in [dir.path().to_path_buf(), dir.path().join("sock")] {
            chown(&path, Some(postgres_uid()), None).unwrap();
        }
        let cluster = PrivatePostgres {
            dir,
            bin,
            port: spare_port(),
        };
        let data = cluster.data();
        run(
            cluster
                .as_postgres("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(&data),
            "initdb",
        )
        .await;
        cluster.start_again().await;
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT` (append `/dbname`).
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// `pg_ctl stop -m fast`: open sessions are terminated, the server shuts down cleanly.
    pub async fn stop(&self) {
        run(
            self.as_postgres("pg_ctl")
                .args(["stop", "-m", "fast", "-w", "-D"])
                .arg(self.data()),
            "pg_ctl stop",
        )
        .await;
        wait_for_port(self.port, false, "PostgreSQL stop").await;
    }

    /// `pg_ctl start` on the same port and data; returns once it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().join("sock").display()
        );
        run(
            self.as_postgres("pg_ctl")
                .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
                .arg(self.dir.path().join("server.log"))
                .arg("-D")
                .arg(self.data()),
            "pg_ctl start",
        )
        .await;
        wait_for_port(self.port, true, "PostgreSQL start").await;
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, tool: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn postgres_uid() -> u32 {
    let out = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .unwrap();
    let uid = String::from_utf8_lossy(&out.stdout);
    uid.trim().parse().expect("a `postgres` OS user")
}

/// A RabbitMQ node of its own (`sf<pid>_<port>@localhost`), with no plugins, its own
/// configuration (the machine's binds 5672) and its own Erlang cookie (HOME is its directory).
pub struct PrivateRabbit {
    dir: tempfile::TempDir,
    pub port: u16,
    dist_port: u16,
    node: String,
    server: Option<Child>,
}

const RABBIT_BIN: &str = "/usr/lib/rabbitmq/bin";

impl PrivateRabbit {
    pub async fn start() -> PrivateRabbit {
        let dir = tempfile::tempdir().unwrap();
        let port = spare_port();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.path().join("env.conf"), "").unwrap();
        let conf =
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n");
        std::fs::write(dir.path().join("rabbitmq.conf"), conf).unwrap();
        let mut node = PrivateRabbit {
            node: format!("sf{}_{port}@localhost", std::process::id()),
            dist_port: spare_port(),
            dir,
            port,
            server: None,
        };
        node.start_again().await;
        node
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node (again) on the same port and data; returns once AMQP accepts connections.
    pub async fn start_again(&mut self) -> Duration {
        let started = Instant::now();
        let log = std::fs::File::create(self.dir.path().join("server.out")).unwrap();
        let server = self
            .env(Command::new(Path::new(RABBIT_BIN).join("rabbitmq-server")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server starts");
        self.server = Some(server);
        wait_for_port(self.port, true, "RabbitMQ start").await;
        // The AMQP port opens before the node has finished booting (a connection made then is
        // aborted); `await_startup` returns once the node accepts clients.
        let mut ctl = tokio::process::Command::from(
            self.env(Command::new(Path::new(RABBIT_BIN).join("rabbitmqctl"))),
        );
        let timeout = STARTUP.as_secs().to_string();
        run(
            ctl.args(["-n", &self.node, "await_startup", "--timeout", &timeout]),
            "rabbitmqctl await_startup",
        )
        .await;
        started.elapsed()
    }

    /// `rabbitmqctl stop`: the node shuts down cleanly (durable queues and persistent messages
    /// stay on disk); returns once its AMQP port is closed and the server process has exited.
    pub async fn stop(&mut self) {
        let mut ctl = tokio::process::Command::from(
            self.env(Command::new(Path::new(RABBIT_BIN).join("rabbitmqctl"))),
        );
        run(ctl.args(["-n", &self.node, "stop"]), "rabbitmqctl stop").await;
        wait_for_port(self.port, false, "RabbitMQ stop").await;
        if let Some(mut server) = self.server.take() {
            let deadline = Instant::now() + STARTUP;
            while server.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "rabbitmq-server did not exit");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn env(&self, mut command: Command) -> Command {
        let dir = self.dir.path();
        command
            .current_dir(dir)
            .env("HOME", dir)
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}",
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        command
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = self
                .env(Command::new(Path::new(RABBIT_BIN).join("rabbitmqctl")))
                .args(["-n", &self.node, "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
