//! Kubernetes' channel framing over WebSocket messages (k8s.io/apimachinery wsstream): each
//! message starts with its channel number — one byte in the binary protocols, one ASCII digit
//! with a base64 body in the `base64.` ones (sent as text messages).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};

use super::frame::Message;

/// v5.channel.k8s.io: a message `[255, channel]` closes the channel (the client's stdin EOF).
pub const CLOSE_CHANNEL: u8 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Binary,
    Base64,
}

/// What a received message means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Data(u8, Bytes),
    /// v5's close signal for a channel.
    Close(u8),
    /// An empty message (k8s skips them), or one the codec cannot read.
    Ignored,
}

impl Codec {
    /// The message carrying `data` on `channel`, and whether it is text.
    pub fn encode(self, channel: u8, data: &[u8]) -> (bool, Bytes) {
        match self {
            Codec::Binary => {
                let mut out = BytesMut::with_capacity(1 + data.len());
                out.put_u8(channel);
                out.put_slice(data);
                (false, out.freeze())
            }
            Codec::Base64 => {
                let mut out = String::with_capacity(1 + data.len().div_ceil(3) * 4);
                out.push(char::from(b'0'.wrapping_add(channel)));
                STANDARD.encode_string(data, &mut out);
                (true, Bytes::from(out))
            }
        }
    }

    /// Reads a message; `close_signal`: the protocol is v5 (255 means close).
    pub fn decode(self, message: Message, close_signal: bool) -> Inbound {
        let data = match message {
            Message::Binary(d) | Message::Text(d) => d,
            _ => return Inbound::Ignored,
        };
        let Some(&first) = data.first() else { return Inbound::Ignored };
        if close_signal && first == CLOSE_CHANNEL {
            return match data.get(1) {
                Some(&channel) if data.len() == 2 => Inbound::Close(channel),
                _ => Inbound::Ignored,
            };
        }
        match self {
            Codec::Binary => Inbound::Data(first, data.slice(1..)),
            Codec::Base64 => match STANDARD.decode(&data[1..]) {
                Ok(decoded) => Inbound::Data(first.wrapping_sub(b'0'), Bytes::from(decoded)),
                Err(_) => Inbound::Ignored,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_channels() {
        // The examples in wsstream's documentation.
        let (text, m) = Codec::Binary.encode(0, b"foo\n");
        assert!(!text);
        assert_eq!(&m[..], &[0, 102, 111, 111, 10]);
        let (text, m) = Codec::Base64.encode(1, b"\n");
        assert!(text);
        assert_eq!(&m[..], &[49, 67, 103, 61, 61]);
        assert_eq!(
            Codec::Base64.decode(Message::Text(Bytes::from_static(b"0Zm9vCg==")), false),
            Inbound::Data(0, Bytes::from_static(b"foo\n"))
        );
        assert_eq!(
            Codec::Binary.decode(Message::Binary(Bytes::from_static(&[4, b'{', b'}'])), false),
            Inbound::Data(4, Bytes::from_static(b"{}"))
        );
    }

    #[test]
    fn v5_close_signal() {
        let close = Message::Binary(Bytes::from_static(&[255, 0]));
        assert_eq!(Codec::Binary.decode(close.clone(), true), Inbound::Close(0));
        // Before v5, 255 is just a channel number.
        assert_eq!(Codec::Binary.decode(close, false), Inbound::Data(255, Bytes::from_static(&[0])));
        assert_eq!(Codec::Binary.decode(Message::Binary(Bytes::from_static(&[255, 0, 1])), true), Inbound::Ignored);
        assert_eq!(Codec::Binary.decode(Message::Binary(Bytes::new()), true), Inbound::Ignored);
    }
}
