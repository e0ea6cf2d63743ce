//! Feeds arbitrary bytes to the frame reader and the codec: they must answer
//! with a value or an error, never panic, hang or allocate past the limit.
#![no_main]

use futurize_runtime::codec;
use futurize_runtime::wire::{FromWorker, ToWorker, read_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while let Ok(Some(_)) = read_message::<_, ToWorker>(&mut input, 1 << 20) {}
    let mut input = data;
    while let Ok(Some(_)) = read_message::<_, FromWorker>(&mut input, 1 << 20) {}
    let _ = codec::decode::<(Vec<f64>, String, Option<u64>)>(data, "fuzz input");
    let _ = codec::decode::<Vec<Vec<u8>>>(data, "fuzz input");
});
