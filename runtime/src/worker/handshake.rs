//! The worker's side of the handshake: the leader's first frame, checked.
//!
//! A worker serves only a leader that speaks its protocol version and runs
//! its very executable (the same build id): entry functions travel as
//! offsets into that executable. Anything else is refused with a reason
//! that names both sides, and the worker exits.

use crate::protocol::wire::{self, ToWorker};
use crate::protocol::{hex, identity};
use crate::{Error, Plan};
use std::io::BufRead;

/// Why a worker does not serve the leader that greeted it.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A leader of another version or build: tell it why.
    Tell(String),
    /// The channel broke, or its first frame was not a handshake, or the
    /// plan it passed on does not parse.
    Broken(Error),
}

/// Reads the leader's first frame from `input` and checks it: the plan it
/// passes on, `None` when the leader closed the channel at once.
pub(crate) fn read_hello(input: &mut impl BufRead, limit: u64) -> Result<Option<Plan>, Refusal> {
    let hello = wire::read_message::<_, ToWorker>(input, limit).map_err(Refusal::Broken)?;
    let (version, build_id, nested_plan) = match hello {
        Some((
            ToWorker::Hello {
                version,
                build_id,
                nested_plan,
            },
            _,
        )) => (version, build_id, nested_plan),
        Some((other, _)) => {
            return Err(Refusal::Broken(Error::Protocol(format!(
                "expected a handshake, got {other:?}"
            ))));
        }
        None => return Ok(None),
    };
    if version != wire::PROTOCOL_VERSION {
        return Err(Refusal::Tell(format!(
            "the leader speaks protocol version {version}, this worker {}",
            wire::PROTOCOL_VERSION
        )));
    }
    if build_id != identity::build_id() {
        return Err(Refusal::Tell(format!(
            "the leader's executable (build {}) differs from this worker's (build {})",
            hex(&build_id),
            hex(identity::build_id())
        )));
    }
    Plan::parse_from(&nested_plan, "the plan the leader passed on")
        .map(Some)
        .map_err(Refusal::Broken)
}

/// What a worker makes of `input` as its channel from the leader, without
/// running anything: the handshake, then every frame after it read as the
/// serve loop reads them. For the fuzzer, which feeds it arbitrary bytes;
/// it must never panic, hang or allocate past `limit`.
pub(crate) fn read_as_worker(input: &mut impl BufRead, limit: u64) -> String {
    match read_hello(input, limit) {
        Ok(Some(plan)) => {
            let mut seen = format!("serves under {plan}");
            loop {
                match wire::read_message::<_, ToWorker>(input, limit) {
                    Ok(Some((message, payload))) => {
                        seen = format!("{message:?} with {} bytes", payload.len());
                    }
                    Ok(None) => return seen,
                    Err(e) => return e.to_string(),
                }
            }
        }
        Ok(None) => "the leader closed the channel".into(),
        Err(Refusal::Tell(reason)) => reason,
        Err(Refusal::Broken(e)) => e.to_string(),
    }
}
