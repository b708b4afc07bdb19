//! Fuzz target `message`: `Message::parse` on arbitrary bytes must never panic; whatever parses
//! must emit (canonical form) and re-parse to an equal `Message`, and the canonical bytes must be
//! a fixed point of parse + emit. MD5 verification and the component walk also run on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wccp_wire::{Message, MessagePacket};

fuzz_target!(|data: &[u8]| {
    // Authentication runs before parsing in a receiver, so it sees every input too.
    let _ = wccp_wire::verify(data, b"wccpTest");
    let _ = wccp_wire::authenticate(data, None);
    if let Ok(p) = MessagePacket::new_checked(data) {
        for c in p.components() {
            let Ok(c) = c else { break };
            let _ = c.component_type();
        }
    }
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    let _ = msg.check_addresses();
    let bytes = msg
        .to_vec()
        .unwrap_or_else(|e| panic!("parsed message does not emit: {e}: {msg:?}"));
    assert_eq!(bytes.len(), msg.buffer_len());
    let again = Message::parse(&bytes)
        .unwrap_or_else(|e| panic!("emitted message does not re-parse: {e}: {msg:?}"));
    assert_eq!(again, msg, "parse(emit(m)) != m");
    let bytes2 = again.to_vec().expect("re-emit");
    assert_eq!(bytes2, bytes, "emit is not a fixed point");
});
