//! `sessiontap::SessionTap` over SPDY against a model of the server's stream routing (spdystream
//! under the kubelet's `waitForStreams`): a crafted client opens, resets and writes streams (NULs
//! and capitals in `streamtype`, second streams for a role, GOAWAY), the server writes output
//! where the kubelet would and data anywhere else. No byte the model's server sends as stdout or
//! stderr may go unrecorded unless the tap reported itself unreadable, and a tap that never saw an
//! error stream reports no exit; with and without the request's parameters.
//!
//! The model, the checker and the input format are sessiontap's test oracle, included by path so
//! that the proptest (`crates/sessiontap/tests/spdy_model.rs`) and this target check the same
//! thing: `server_model.rs` (model and property) and `crafted.rs` (the byte format: a flags byte
//! for the request's streams, eight bytes of frame-worker races, then one action per tag byte).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/sessiontap/tests/common/server_model.rs"]
mod server_model;

#[allow(dead_code)]
#[path = "../../crates/sessiontap/tests/common/crafted.rs"]
mod crafted;

fuzz_target!(|data: &[u8]| {
    let scenario = crafted::scenario_from_bytes(data);
    // The tap as the proxy makes it for exec and attach (it knows the request's parameters and
    // stops reading the client's header blocks once the streams the kubelet waits for are open),
    // and without them.
    server_model::check_with_params(&scenario);
    server_model::check(&scenario);
});
