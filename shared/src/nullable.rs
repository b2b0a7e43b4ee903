//! Lenient decoding of lists: `null` reads as empty. Some JSON producers (the `temporal` CLI's
//! re-encoding among them) print an empty list as `null`.

use serde::{Deserialize, Deserializer};

/// Deserializes `null` or a missing value as `T::default()`.
pub fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
