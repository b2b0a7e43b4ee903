//! Connecting to Temporal with the SDK's standard environment configuration
//! (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, profiles …).

use temporalio_client::envconfig::LoadClientConfigProfileOptions;
use temporalio_client::{Client, ClientOptions, Connection};

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[error("connecting to Temporal failed: {0}")]
pub struct ConnectError(String);

/// Connects a client as configured by the environment (default `localhost:7233`, `default`).
pub async fn connect_from_env() -> Result<Client, ConnectError> {
    let (connection_options, client_options) =
        ClientOptions::load_from_config(LoadClientConfigProfileOptions::default())
            .map_err(|e| ConnectError(e.to_string()))?;
    let connection = Connection::connect(connection_options)
        .await
        .map_err(|e| ConnectError(e.to_string()))?;
    Client::new(connection, client_options).map_err(|e| ConnectError(e.to_string()))
}
