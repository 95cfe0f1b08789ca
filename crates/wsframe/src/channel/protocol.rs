//! The Kubernetes channel subprotocols and channel numbers.

/// Channel 0: the process's standard input (client to server).
pub const STDIN: u8 = 0;
/// Channel 1: standard output (server to client).
pub const STDOUT: u8 = 1;
/// Channel 2: standard error (server to client; absent with a tty).
pub const STDERR: u8 = 2;
/// Channel 3: the error channel, one `metav1.Status` JSON document (v4 and later) at exit.
pub const ERROR: u8 = 3;
/// Channel 4: terminal resize, a JSON stream of `{"Width":..,"Height":..}` (client to server).
pub const RESIZE: u8 = 4;
/// 255: on `v5.channel.k8s.io` the first byte of a close signal `[255, ch]` that half-closes
/// channel `ch`; on the other protocols an ordinary (unused) channel number.
pub const CLOSE: u8 = 255;

/// client-go's WebSocket buffer size (`DataBufferSize`, 32 KiB + 1 KiB): messages larger than
/// this are sent as several frames. Pass it to
/// [`encode_channel_message`](crate::encode_channel_message) to fragment as kubectl does.
pub const CLIENT_GO_BUFFER_SIZE: usize = 33 * 1024;

/// A Kubernetes channel subprotocol, as named by `Sec-WebSocket-Protocol` in the 101
/// response (the protocol in force is the one the server chose, not those offered).
///
/// Sources: `k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go` (`channel.k8s.io`,
/// `base64.channel.k8s.io`, the v5 close signal), kubelet
/// `pkg/kubelet/cri/streaming/remotecommand/websocket.go` (the `v4.` variants) and
/// `k8s.io/apimachinery/pkg/util/remotecommand/constants.go` (`v5.channel.k8s.io`).
///
/// Non-exhaustive: Kubernetes adds a protocol version now and then (v5 came with 1.30), so a
/// `match` needs a wildcard arm; [`ChannelProtocol::ALL`] lists the ones this version knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelProtocol {
    /// `channel.k8s.io`: binary messages, the first byte is the channel number.
    Channel,
    /// `v4.channel.k8s.io`: as `Channel`; the error channel carries a structured `Status`.
    V4,
    /// `v5.channel.k8s.io` (kubectl 1.30+): as `V4`, plus the close signal `[255, ch]`.
    V5,
    /// `base64.channel.k8s.io`: text messages, an ASCII digit `'0' + channel` then the data
    /// as padded standard base64.
    Base64,
    /// `v4.base64.channel.k8s.io`: as `Base64`, with v4's structured error channel.
    V4Base64,
}

impl ChannelProtocol {
    /// Every protocol, in the order of the enum.
    pub const ALL: [Self; 5] = [
        Self::Channel,
        Self::V4,
        Self::V5,
        Self::Base64,
        Self::V4Base64,
    ];

    /// The protocol a `Sec-WebSocket-Protocol` value names (compared exactly, as Go does), or
    /// `None` for another protocol (such as `SPDY/3.1+portforward.k8s.io`).
    ///
    /// The empty string maps to [`ChannelProtocol::Channel`]: a 101 without a subprotocol is
    /// served as binary `channel.k8s.io` (`wsstream.NewDefaultChannelProtocols` registers
    /// `""` as binary, and client-go falls back to its v1 protocol).
    pub fn from_subprotocol(name: &str) -> Option<Self> {
        match name {
            "" | "channel.k8s.io" => Some(Self::Channel),
            "v4.channel.k8s.io" => Some(Self::V4),
            "v5.channel.k8s.io" => Some(Self::V5),
            "base64.channel.k8s.io" => Some(Self::Base64),
            "v4.base64.channel.k8s.io" => Some(Self::V4Base64),
            _ => None,
        }
    }

    /// The subprotocol name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Channel => "channel.k8s.io",
            Self::V4 => "v4.channel.k8s.io",
            Self::V5 => "v5.channel.k8s.io",
            Self::Base64 => "base64.channel.k8s.io",
            Self::V4Base64 => "v4.base64.channel.k8s.io",
        }
    }

    /// Whether messages are an ASCII channel digit plus base64 text.
    pub fn is_base64(self) -> bool {
        matches!(self, Self::Base64 | Self::V4Base64)
    }

    /// Whether a message `[255, ch]` closes channel `ch` (v5 only).
    pub fn supports_close_signal(self) -> bool {
        self == Self::V5
    }
}

impl std::fmt::Display for ChannelProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for protocol in ChannelProtocol::ALL {
            assert_eq!(
                ChannelProtocol::from_subprotocol(protocol.name()),
                Some(protocol)
            );
        }
        assert_eq!(
            ChannelProtocol::from_subprotocol(""),
            Some(ChannelProtocol::Channel)
        );
        assert_eq!(ChannelProtocol::from_subprotocol("V5.channel.k8s.io"), None);
        assert_eq!(
            ChannelProtocol::from_subprotocol("SPDY/3.1+portforward.k8s.io"),
            None
        );
    }
}
