//! What a worker's answers mean to the leader: how a task ended, as a
//! result, and a body's `log` record, handed to this process's logger.
//! Shared by the pools of worker processes and by Slurm jobs, whose answers
//! are the same frames read from a file.

use crate::Error;
use crate::protocol::level_filter;
use crate::protocol::wire::{LogRecord, Outcome};

/// How a task ended, as the result its slot holds (`value`: its bytes, or
/// where they are).
pub(crate) fn outcome_to_result<V>(outcome: Outcome, value: V) -> Result<V, Error> {
    match outcome {
        Outcome::Value => Ok(value),
        Outcome::Panicked(panic) => Err(panic.into()),
        Outcome::TooLarge { size, limit } => Err(Error::TooLarge {
            what: "the value and the printed output of a future".into(),
            size,
            limit,
        }),
        Outcome::Failed { message } => Err(Error::Protocol(message)),
    }
}

/// Hands a body's `log` record to this process's logger, with level,
/// target and message as they were, and the future's label and the element
/// index as the key-values `label` and `index`.
pub(crate) fn emit_log(record: LogRecord, label: Option<&str>) {
    let Some(level) = level_filter(record.level).to_level() else {
        return;
    };
    if level > log::max_level() {
        return;
    }
    let mut tags: Vec<(&str, log::kv::Value<'_>)> = Vec::with_capacity(2);
    if let Some(label) = label {
        tags.push(("label", log::kv::Value::from(label)));
    }
    if let Some(index) = record.index {
        tags.push(("index", log::kv::Value::from(index)));
    }
    let tags: &[(&str, log::kv::Value<'_>)] = &tags;
    crate::progress::above_bar(|| {
        log::logger().log(
            &log::Record::builder()
                .args(format_args!("{}", record.message))
                .level(level)
                .target(&record.target)
                .module_path(record.module_path.as_deref())
                .file(record.file.as_deref())
                .line(record.line)
                .key_values(&tags)
                .build(),
        )
    });
}
