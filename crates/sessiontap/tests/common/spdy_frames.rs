//! SPDY frames built by hand for the tests, one direction at a time, each with its own header
//! compression context as spdystream keeps one per direction.

use sessiontap::{Protocol, RemoteCommandVersion};
use spdyframe::{
    encode_control, encode_data, ControlFrame, HeaderBlock, HeaderDeflater, StreamId, FLAG_FIN,
};

use super::Harness;

pub const V4: Protocol = Protocol::Spdy {
    version: RemoteCommandVersion::V4,
};

pub fn id(n: u32) -> StreamId {
    StreamId::new(n).expect("31-bit id")
}

/// One direction's frames, with its own header compression context.
pub struct Frames {
    pub out: Vec<u8>,
    deflater: HeaderDeflater,
}

impl Frames {
    pub fn new() -> Self {
        Frames {
            out: Vec::new(),
            deflater: HeaderDeflater::new(),
        }
    }

    pub fn block(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let headers: HeaderBlock = pairs.iter().copied().collect();
        let mut block = Vec::new();
        self.deflater
            .deflate(&headers, &mut block)
            .expect("deflate");
        block
    }

    pub fn syn_stream(&mut self, stream: u32, stream_type: &str) -> &mut Self {
        self.syn_stream_with(stream, &[("streamtype", stream_type)])
    }

    /// A SYN_STREAM with exactly these header pairs (any case, repeats, NULs).
    pub fn syn_stream_with(&mut self, stream: u32, pairs: &[(&str, &str)]) -> &mut Self {
        let block = self.block(pairs);
        encode_control(
            &ControlFrame::SynStream {
                stream_id: id(stream),
                associated_stream_id: StreamId::ZERO,
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &block,
            },
            &mut self.out,
        );
        self
    }

    pub fn syn_reply(&mut self, stream: u32) -> &mut Self {
        let block = self.block(&[]);
        encode_control(
            &ControlFrame::SynReply {
                stream_id: id(stream),
                flags: 0,
                header_block: &block,
            },
            &mut self.out,
        );
        self
    }

    pub fn headers(&mut self, stream: u32, pairs: &[(&str, &str)]) -> &mut Self {
        let block = self.block(pairs);
        encode_control(
            &ControlFrame::Headers {
                stream_id: id(stream),
                flags: 0,
                header_block: &block,
            },
            &mut self.out,
        );
        self
    }

    pub fn data(&mut self, stream: u32, bytes: &[u8]) -> &mut Self {
        encode_data(id(stream), 0, bytes, &mut self.out).expect("fits");
        self
    }

    pub fn fin(&mut self, stream: u32) -> &mut Self {
        encode_data(id(stream), FLAG_FIN, &[], &mut self.out).expect("fits");
        self
    }

    /// RST_STREAM CANCEL, as spdystream's `Stream.Reset` sends it.
    pub fn rst(&mut self, stream: u32) -> &mut Self {
        self.control(ControlFrame::RstStream {
            stream_id: id(stream),
            status: 5,
            flags: 0,
        })
    }

    pub fn control(&mut self, frame: ControlFrame<'_>) -> &mut Self {
        encode_control(&frame, &mut self.out);
        self
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// `kubectl exec -it`: error=1, stdin=3, stdout=5, resize=7.
pub fn exec_it(harness: &mut Harness, client: &mut Frames, server: &mut Frames) {
    client
        .syn_stream(1, "error")
        .syn_stream(3, "stdin")
        .syn_stream(5, "stdout")
        .syn_stream(7, "resize");
    harness.client(&client.take()).expect("client setup");
    server.syn_reply(1).syn_reply(3).syn_reply(5).syn_reply(7);
    harness.server(&server.take()).expect("server setup");
}
