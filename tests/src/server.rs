//! One Temporal dev server per test process.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static EXTRA_ARGS: OnceLock<Vec<String>> = OnceLock::new();

/// Makes this test process start its own dev server with these extra `start-dev` arguments
/// (e.g. a lowered payload limit), even when `AGENTFLOW_TEST_TEMPORAL_ADDRESS` is set. Call it
/// before anything uses the server; later calls with other arguments panic.
pub fn dev_server_args(args: &[&str]) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(
        EXTRA_ARGS.get_or_init(|| args.clone()),
        &args,
        "one set of dev server arguments per test process"
    );
}

/// Address (`host:port`) of the dev server the tests use.
pub fn temporal_address() -> &'static str {
    static SERVER: OnceLock<(String, Option<Mutex<Child>>)> = OnceLock::new();
    &SERVER
        .get_or_init(|| match std::env::var("AGENTFLOW_TEST_TEMPORAL_ADDRESS") {
            Ok(address) if !address.is_empty() && EXTRA_ARGS.get().is_none() => (address, None),
            _ => {
                let (address, watchdog) = start_dev_server();
                (address, Some(Mutex::new(watchdog)))
            }
        })
        .0
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// Starts `temporal server start-dev` in memory on a free port. A small shell watchdog stops it
/// when this test process exits, however it exits; its handle lives as long as the process.
fn start_dev_server() -> (String, Child) {
    let port = free_port();
    let http_port = free_port();
    let metrics_port = free_port();
    let extra = EXTRA_ARGS
        .get()
        .map(|args| args.join(" "))
        .unwrap_or_default();
    let script = format!(
        "temporal server start-dev --headless --ip 127.0.0.1 --port {port} \
         --http-port {http_port} --metrics-port {metrics_port} --log-level error \
         --search-attribute AgentId=Keyword --search-attribute TaskStatus=Keyword \
         --search-attribute UserId=Keyword {extra} >/dev/null 2>&1 & server=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $server",
        parent = std::process::id()
    );
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
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
    (address, watchdog)
}
