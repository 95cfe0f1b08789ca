//! Kubernetes channel messages over WebSocket: the subprotocols, the decoder and encoders.

mod base64;
mod decoder;
mod encode;
mod message;
mod protocol;

pub use decoder::{ChannelDecoder, ChannelEvent};
pub use encode::{encode_channel_message, encode_close_signal, encode_message};
pub use protocol::{
    ChannelProtocol, CLIENT_GO_BUFFER_SIZE, CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};
