#!/usr/bin/env bash
# Runs the unit tests of futurize's in-place map engine (and any other test
# names given) under Miri, which checks the unsafe code for undefined
# behaviour: out-of-bounds or uninitialised reads, double drops, data races
# between the threads that fill one output.
#
#   scripts/miri.sh                      # map::in_place and map::elements
#   scripts/miri.sh protocol::bulk       # other tests by name filter
#
# Needs a nightly toolchain with the miri and rust-src components
# (`rustup +nightly component add miri rust-src`). Builds in its own target
# directory so that it never disturbs a stable build.
set -euo pipefail
cd "$(dirname "$0")/.."
filters=("$@")
if [ ${#filters[@]} -eq 0 ]; then
    filters=(map::in_place map::elements)
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri-checks}"
# Isolation off: the runtime reads the clock and the environment at start.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
cargo +nightly miri setup
cargo +nightly miri test -p futurize-runtime --lib -- "${filters[@]}"
