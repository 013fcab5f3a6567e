//! Records on a stream (TCP) link: the same datagrams back to back, delimited by the length
//! field of their own header.

use super::packet::{Datagram, ParseError, HEADER_LEN, MAX_PAYLOAD_LEN};

/// Splits a byte stream into records (datagrams), checking each header as soon as it is
/// complete. A bad header (wrong version, unknown type, zero hop budget or session, payload
/// over the limit) fails the decoder for good: a stream has no markers to find the next
/// record by, so the link must be closed; every later [`StreamDecoder::pop`] returns the same
/// error.
///
/// Memory: the decoder holds what was pushed and not yet popped, which is at most one
/// partial record plus the last chunk pushed, if the caller pops after each push.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    buf: Vec<u8>,
    /// Where the next record starts in `buf`.
    start: usize,
    max_payload: usize,
    failed: Option<ParseError>,
}

impl StreamDecoder {
    /// A decoder that accepts records of up to `max_payload` payload bytes (at most 65535;
    /// for a TCP link, the largest frame it carries).
    pub fn new(max_payload: usize) -> Self {
        StreamDecoder {
            buf: Vec::new(),
            start: 0,
            max_payload: max_payload.min(MAX_PAYLOAD_LEN),
            failed: None,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed and not yet popped.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether the decoder failed (the link must be closed).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The next complete record, or `None` until more bytes are pushed. The record's header
    /// is checked ([`Datagram::new_checked`] holds for it); open it as a datagram (writable,
    /// to decrypt it in place).
    ///
    /// # Errors
    /// The [`ParseError`] of a bad header, or [`ParseError::Oversized`]; the decoder has failed
    /// then.
    pub fn pop(&mut self) -> Result<Option<Datagram<&mut [u8]>>, ParseError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let pending = &self.buf[self.start..];
        if pending.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = Datagram::new_unchecked(&pending[..HEADER_LEN]);
        let checked = header.check_header().and_then(|total| {
            let len = usize::from(header.payload_len());
            if len > self.max_payload {
                Err(ParseError::Oversized {
                    len,
                    max: self.max_payload,
                })
            } else {
                Ok(total)
            }
        });
        let total = match checked {
            Ok(total) => total,
            Err(error) => {
                self.failed = Some(error.clone());
                self.buf = Vec::new();
                self.start = 0;
                return Err(error);
            }
        };
        if pending.len() < total {
            return Ok(None);
        }
        let record = &mut self.buf[self.start..self.start + total];
        self.start += total;
        Ok(Some(Datagram::new_unchecked(record)))
    }
}
