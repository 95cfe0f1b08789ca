//! Which protocol the session speaks: what the 101 response selected.

use wsframe::ChannelProtocol;

use crate::status::ErrorFormat;

/// A version of the Kubernetes remote command protocol over SPDY, as the 101 response's
/// `X-Stream-Protocol-Version` names it (apimachinery `pkg/util/remotecommand/constants.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RemoteCommandVersion {
    /// `channel.k8s.io`: the error stream carries plain text.
    V1,
    /// `v2.channel.k8s.io`: as v1, with stdin half-close fixed.
    V2,
    /// `v3.channel.k8s.io`: adds the `resize` stream.
    V3,
    /// `v4.channel.k8s.io`: the error stream carries a `metav1.Status` (exit codes).
    V4,
    /// `v5.channel.k8s.io`: as v4 over SPDY (its close signal only exists over WebSocket).
    V5,
}

impl RemoteCommandVersion {
    /// Every version, oldest first.
    pub const ALL: [Self; 5] = [Self::V1, Self::V2, Self::V3, Self::V4, Self::V5];

    /// The version an `X-Stream-Protocol-Version` value names (surrounding whitespace ignored),
    /// or `None`. The empty value is v1: client-go falls back to `channel.k8s.io` when the server
    /// negotiated no version.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim() {
            "" | "channel.k8s.io" => Some(Self::V1),
            "v2.channel.k8s.io" => Some(Self::V2),
            "v3.channel.k8s.io" => Some(Self::V3),
            "v4.channel.k8s.io" => Some(Self::V4),
            "v5.channel.k8s.io" => Some(Self::V5),
            _ => None,
        }
    }

    /// The protocol name.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => "channel.k8s.io",
            Self::V2 => "v2.channel.k8s.io",
            Self::V3 => "v3.channel.k8s.io",
            Self::V4 => "v4.channel.k8s.io",
            Self::V5 => "v5.channel.k8s.io",
        }
    }

    /// Whether the client opens a `resize` stream for tty sessions (v3 and later).
    pub fn has_resize(self) -> bool {
        self >= Self::V3
    }
}

/// The protocol of one exec/attach session, as the 101 response selected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SPDY/3.1 (`Upgrade: SPDY/3.1`) with a remote command protocol version.
    Spdy {
        /// The version from the 101's `X-Stream-Protocol-Version`.
        version: RemoteCommandVersion,
    },
    /// WebSocket with a Kubernetes channel subprotocol (the 101's `Sec-WebSocket-Protocol`).
    WebSocket(ChannelProtocol),
}

impl Protocol {
    /// A SPDY session with the version the 101 response's `X-Stream-Protocol-Version` names
    /// (empty when the header is missing).
    ///
    /// ```
    /// use sessiontap::{Protocol, RemoteCommandVersion};
    ///
    /// assert_eq!(
    ///     Protocol::from_spdy_header("v4.channel.k8s.io"),
    ///     Some(Protocol::Spdy { version: RemoteCommandVersion::V4 })
    /// );
    /// assert_eq!(Protocol::from_spdy_header("portforward.k8s.io"), None);
    /// ```
    pub fn from_spdy_header(x_stream_protocol_version: &str) -> Option<Self> {
        RemoteCommandVersion::from_name(x_stream_protocol_version)
            .map(|version| Protocol::Spdy { version })
    }

    /// A WebSocket session with the subprotocol the 101 response's `Sec-WebSocket-Protocol`
    /// names (see [`ChannelProtocol::from_subprotocol`]; the empty value is `channel.k8s.io`).
    ///
    /// ```
    /// use sessiontap::Protocol;
    /// use wsframe::ChannelProtocol;
    ///
    /// assert_eq!(
    ///     Protocol::from_websocket_subprotocol("v5.channel.k8s.io"),
    ///     Some(Protocol::WebSocket(ChannelProtocol::V5))
    /// );
    /// ```
    pub fn from_websocket_subprotocol(sec_websocket_protocol: &str) -> Option<Self> {
        ChannelProtocol::from_subprotocol(sec_websocket_protocol.trim()).map(Protocol::WebSocket)
    }

    /// How the server writes the exit status on the error stream/channel: a `metav1.Status` for
    /// v4 and later (`v4.channel.k8s.io`, `v5.channel.k8s.io`, `v4.base64.channel.k8s.io`),
    /// plain text before (kubelet's `v1WriteStatusFunc`, the API server's WebSocket handler for
    /// `channel.k8s.io` and `base64.channel.k8s.io`).
    pub fn error_format(&self) -> ErrorFormat {
        let status = match *self {
            Protocol::Spdy { version } => version >= RemoteCommandVersion::V4,
            Protocol::WebSocket(protocol) => matches!(
                protocol,
                ChannelProtocol::V4 | ChannelProtocol::V5 | ChannelProtocol::V4Base64
            ),
        };
        if status {
            ErrorFormat::Status
        } else {
            ErrorFormat::PlainText
        }
    }

    /// Whether a tty session sends resizes: always over WebSocket, v3 and later over SPDY.
    pub fn has_resize(&self) -> bool {
        match *self {
            Protocol::Spdy { version } => version.has_resize(),
            Protocol::WebSocket(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdy_names_round_trip() {
        for version in RemoteCommandVersion::ALL {
            assert_eq!(
                RemoteCommandVersion::from_name(version.name()),
                Some(version)
            );
        }
        assert_eq!(
            Protocol::from_spdy_header(""),
            Some(Protocol::Spdy {
                version: RemoteCommandVersion::V1
            })
        );
        assert_eq!(Protocol::from_spdy_header("v6.channel.k8s.io"), None);
    }

    #[test]
    fn error_formats() {
        let spdy = |version| Protocol::Spdy { version };
        assert_eq!(
            spdy(RemoteCommandVersion::V3).error_format(),
            ErrorFormat::PlainText
        );
        assert_eq!(
            spdy(RemoteCommandVersion::V4).error_format(),
            ErrorFormat::Status
        );
        let ws = Protocol::WebSocket;
        assert_eq!(
            ws(ChannelProtocol::Base64).error_format(),
            ErrorFormat::PlainText
        );
        assert_eq!(
            ws(ChannelProtocol::Channel).error_format(),
            ErrorFormat::PlainText
        );
        assert_eq!(
            ws(ChannelProtocol::V4Base64).error_format(),
            ErrorFormat::Status
        );
        assert_eq!(ws(ChannelProtocol::V5).error_format(), ErrorFormat::Status);
    }
}
