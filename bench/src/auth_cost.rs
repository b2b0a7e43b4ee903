//! What security costs a request: two in-process apis on the bench's Temporal — auth off and
//! auth on — answer the same requests in turn over HTTP: a route that touches no Temporal
//! (`GET /api/v1/agents`: the middleware alone, with a key, a session cookie, or none), and
//! task creation (the start; with auth on also the tenant's open-tasks check, its visibility
//! count reused for a second).
//! A visibility count on its own is timed too. Creations go to a task queue no worker polls
//! (they stay `created`; the bench's dev server keeps nothing).

use crate::stats::{Percentiles, Report};
use agentflow_api::Application;
use agentflow_api::auth::keys::mint;
use agentflow_shared::config::AgentflowConfig;
use agentflow_shared::ids::KeyId;
use agentflow_shared::security::{KeyRecord, Scope};
use serde_json::json;
use std::time::Instant;
use temporalio_client::Client;

/// A running in-process api and its base URL.
struct LocalApi {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(config: AgentflowConfig, client: Client) -> anyhow::Result<LocalApi> {
    let app = Application::build(config, client).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Ok(LocalApi { url, stop })
}

/// Times `requests` sends of each request builder, interleaved so drift hits all alike.
async fn timed(
    requests: usize,
    builders: &[&(dyn Fn() -> reqwest::RequestBuilder + Sync)],
) -> anyhow::Result<Vec<Percentiles>> {
    let mut samples = vec![Vec::with_capacity(requests); builders.len()];
    for _ in 0..requests {
        for (i, build) in builders.iter().enumerate() {
            let started = Instant::now();
            let response = build().send().await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{} answered {}",
                response.url(),
                response.status()
            );
            response.bytes().await?;
            samples[i].push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(samples.into_iter().map(Percentiles::of).collect())
}

/// Scenario `auth`: `requests` middleware-only requests per mode, `creations` task creations
/// per mode.
pub async fn auth_cost(
    temporal: &str,
    requests: usize,
    creations: usize,
) -> anyhow::Result<Report> {
    let client = crate::baseline::client(temporal).await?;
    let mut open = AgentflowConfig::default_config();
    open.api.listen = "127.0.0.1:0".into();
    open.bus.url.clear();
    open.worker.task_queue = format!("bench-auth-{}", uuid::Uuid::new_v4());
    let minted = mint(KeyRecord {
        id: KeyId(String::new()),
        identity: "bench".into(),
        tenant: "bench".parse().map_err(anyhow::Error::msg)?,
        scopes: vec![Scope::Admin],
        sha256: String::new(),
        created_at: None,
        revoked_at: None,
    });
    let mut secured = open.clone();
    secured.auth.enabled = true;
    secured.auth.keys = vec![minted.record];
    secured.auth.token_secrets = vec!["a bench secret of at least thirty-two bytes".into()];
    // The tenant's bounds are checked on every request (their cost is measured) but set
    // above what the scenario asks for, so none answers 429.
    secured.limits.tenant.requests_per_sec = 1_000_000;
    secured.limits.tenant.request_burst = 1_000_000;
    secured.limits.tenant.max_open_tasks = 1_000_000;
    let off = start(open, client.clone()).await?;
    let on = start(secured, client.clone()).await?;
    let http = reqwest::Client::new();
    let session = http
        .post(format!("{}/api/v1/session", on.url))
        .json(&json!({"key": minted.key}))
        .send()
        .await?
        .error_for_status()?
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?;

    let agents = |base: &str| format!("{base}/api/v1/agents");
    let (off_agents, on_agents) = (agents(&off.url), agents(&on.url));
    let plain = || http.get(&off_agents);
    let keyed = || http.get(&on_agents).bearer_auth(&minted.key);
    let cookie = || http.get(&on_agents).header("cookie", &session);
    let middleware = timed(requests, &[&plain, &keyed, &cookie]).await?;

    let tasks = |base: &str| format!("{base}/api/v1/agents/assistant/tasks");
    let (off_tasks, on_tasks) = (tasks(&off.url), tasks(&on.url));
    let body = json!({"description": "bench auth"});
    let create_off = || http.post(&off_tasks).json(&body);
    let create_on = || http.post(&on_tasks).json(&body).bearer_auth(&minted.key);
    let creation = timed(creations, &[&create_off, &create_on]).await?;

    let mut counts = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        agentflow_api::temporal::count(
            &client,
            "WorkflowType = 'AgentTaskWorkflow' AND ExecutionStatus = 'Running' AND TenantId = 'bench'"
                .into(),
            std::time::Duration::from_secs(10),
        )
        .await?;
        counts.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = off.stop.send(());
    let _ = on.stop.send(());
    Ok(Report {
        scenario: "auth".into(),
        parameters: json!({"requests": requests, "creations": creations}),
        metrics: json!({
            "get_agents_ms": {
                "auth_off": middleware[0],
                "bearer_key": middleware[1],
                "session_cookie": middleware[2],
            },
            "create_task_ms": {
                "auth_off": creation[0],
                "bearer_key": creation[1],
            },
            "visibility_count_ms": Percentiles::of(counts),
        }),
        violations: Vec::new(),
    })
}
