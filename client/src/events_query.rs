//! The `get_events` query's argument, which may also be absent.
//!
//! `temporal workflow query --type get_events` without `--input` sends no payload at all, which a
//! plain serde type cannot decode; this wrapper decodes "no payload" as the first page.

use agentflow_shared::task::EventsRange;
use temporalio_common::data_converters::{
    ErasedSerdePayloadConverter, PayloadConversionError, SerializationContext,
    TemporalDeserializable, TemporalSerializable,
};
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// Argument of `get_events`: a range, defaulting to the first page when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsQuery(pub EventsRange);

impl TemporalSerializable for EventsQuery {
    fn as_serde(&self) -> Result<&dyn erased_serde::Serialize, PayloadConversionError> {
        Ok(&self.0)
    }
}

impl TemporalDeserializable for EventsQuery {
    fn from_serde(
        converter: &dyn ErasedSerdePayloadConverter,
        ctx: &SerializationContext<'_>,
        payload: Payload,
    ) -> Result<Self, PayloadConversionError> {
        EventsRange::from_serde(converter, ctx, payload).map(Self)
    }

    fn from_payloads(
        _ctx: &SerializationContext<'_>,
        payloads: Vec<Payload>,
    ) -> Result<Self, PayloadConversionError> {
        if payloads.is_empty() {
            Ok(Self::default())
        } else {
            Err(PayloadConversionError::WrongEncoding)
        }
    }
}
