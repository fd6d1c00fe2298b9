//! Typed operations: one function per IOCTL, which lays the request out in
//! user pages, sends it, and decodes the reply.

use core::fmt;
use core::mem::size_of;

use usercap::NtStatus;
use usercap::zerocopy::{FromBytes, Immutable, IntoBytes};
use usercap_protocol::{
    BatchReply, BatchRequest, Config, ConfigV1, ConfigV3, GET_NAME_MAX_OUTPUT, IOCTL_BATCH,
    IOCTL_CONFIGURE, IOCTL_ECHO, IOCTL_GET_NAME, IOCTL_MESSAGE, IOCTL_SET_NAME, IOCTL_STATS,
    IOCTL_SUM, MessageReply, NameReply, Segment, SetNameRequest, Stats, SumReply, SumRequest,
    WireUnicodeString,
};

use crate::transport::{Call, Error, Outcome, Pages, Transport};

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The device completed the request with this error status.
    Status(NtStatus),
    /// The request never completed.
    Transport(Error),
    /// The device answered with a reply that does not decode.
    Malformed(String),
    /// An argument cannot be sent (too long for the protocol).
    Argument(String),
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status) => {
                write!(f, "the device returned {status}: {}", describe(*status))
            }
            Self::Transport(error) => error.fmt(f),
            Self::Malformed(why) => write!(f, "malformed reply: {why}"),
            Self::Argument(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for OpError {}

impl From<Error> for OpError {
    fn from(error: Error) -> Self {
        Self::Transport(error)
    }
}

/// A sentence for each status the device documents.
#[must_use]
pub fn describe(status: NtStatus) -> &'static str {
    match status {
        NtStatus::STATUS_SUCCESS => "success",
        NtStatus::STATUS_DATATYPE_MISALIGNMENT => {
            "a pointer is misaligned for the type it points at"
        }
        NtStatus::STATUS_BUFFER_OVERFLOW => "the output was truncated",
        NtStatus::STATUS_INVALID_DEVICE_REQUEST => {
            "unknown IOCTL code, or sent with the wrong method"
        }
        NtStatus::STATUS_ACCESS_VIOLATION => {
            "a buffer or embedded pointer is not accessible user memory"
        }
        NtStatus::STATUS_IN_PAGE_ERROR => {
            "a page of a user buffer could not be read in (an I/O error behind it)"
        }
        NtStatus::STATUS_INVALID_PARAMETER => "the input is malformed or too short",
        NtStatus::STATUS_BUFFER_TOO_SMALL => "the output buffer is too small for the reply",
        NtStatus::STATUS_INTEGER_OVERFLOW => "a count or length sum overflows",
        NtStatus::STATUS_INSUFFICIENT_RESOURCES => "the driver is out of pool",
        NtStatus::STATUS_NOT_SUPPORTED => {
            "a newer struct version sets fields this driver does not know"
        }
        NtStatus::STATUS_INVALID_BUFFER_SIZE => "a count or length is above the driver's limit",
        _ => "a status usercap does not document",
    }
}

/// Where inputs go: the first half of the arena; outputs: the second.
const ARENA: usize = 4 << 20;
const OUTPUT_AT: usize = ARENA / 2;

/// A connection to a device with its own user pages for requests.
/// One per thread: requests are laid out in its pages.
pub struct Client<'t> {
    transport: &'t dyn Transport,
    pages: Pages,
}

impl fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.transport.name())
            .field("pages", &self.pages)
            .finish()
    }
}

/// Bump allocation in the input half of the arena.
struct Layout<'p> {
    pages: &'p Pages,
    next: usize,
}

impl Layout<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<usize, OpError> {
        let offset = self.next;
        if offset + bytes.len() > OUTPUT_AT {
            return Err(OpError::Argument(
                "request larger than the client's arena".into(),
            ));
        }
        self.pages.write(offset, bytes)?;
        self.next = (offset + bytes.len() + 15) & !15;
        Ok(self.pages.addr() + offset)
    }
    fn value<T: IntoBytes + Immutable>(&mut self, value: &T) -> Result<usize, OpError> {
        self.put(value.as_bytes())
    }
}

fn read_reply<T: FromBytes>(bytes: &[u8]) -> Result<T, OpError> {
    T::read_from_bytes(bytes).map_err(|_| {
        OpError::Malformed(format!(
            "expected {} bytes, got {}",
            size_of::<T>(),
            bytes.len()
        ))
    })
}

impl<'t> Client<'t> {
    /// A client over `transport`.
    ///
    /// # Errors
    /// If its pages cannot be allocated.
    pub fn new(transport: &'t dyn Transport) -> Result<Self, OpError> {
        Ok(Self {
            transport,
            pages: Pages::new(ARENA)?,
        })
    }

    /// The transport's name.
    #[must_use]
    pub fn transport_name(&self) -> &'static str {
        self.transport.name()
    }

    fn layout(&self) -> Layout<'_> {
        Layout {
            pages: &self.pages,
            next: 0,
        }
    }

    /// Sends `input` (at `input`, `input_len`) with the output area of
    /// `output_len`; returns the output bytes on success.
    fn send(
        &self,
        code: u32,
        input: usize,
        input_len: usize,
        output_len: usize,
    ) -> Result<Vec<u8>, OpError> {
        let output = self.pages.addr() + OUTPUT_AT;
        let outcome = self.transport.call(&Call {
            code,
            input,
            input_len,
            output,
            output_len,
        })?;
        if !outcome.status.is_success() {
            return Err(OpError::Status(outcome.status));
        }
        Ok(self.pages.read(OUTPUT_AT, outcome.information)?)
    }

    /// A raw call, for the attack suite: any addresses, any lengths.
    ///
    /// # Errors
    /// Transport errors only; statuses are in the outcome.
    pub fn raw(&self, call: &Call) -> Result<Outcome, Error> {
        self.transport.call(call)
    }

    /// ECHO: the bytes come back.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn echo(&self, bytes: &[u8]) -> Result<Vec<u8>, OpError> {
        let mut l = self.layout();
        let at = l.put(bytes)?;
        self.send(IOCTL_ECHO, at, bytes.len(), bytes.len())
    }

    /// SUM of `values`.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn sum(&self, values: &[u32]) -> Result<SumReply, OpError> {
        let mut l = self.layout();
        let data = l.put(values.as_bytes())?;
        let req = l.value(&SumRequest {
            count: values.len() as u64,
            values: data as u64,
        })?;
        read_reply(&self.send(
            IOCTL_SUM,
            req,
            size_of::<SumRequest>(),
            size_of::<SumReply>(),
        )?)
    }

    /// MESSAGE of `kind` with `items`.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn message(&self, kind: u32, items: &[u32]) -> Result<MessageReply, OpError> {
        let count =
            u32::try_from(items.len()).map_err(|_| OpError::Argument("too many items".into()))?;
        let mut bytes = kind.to_le_bytes().to_vec();
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(items.as_bytes());
        let mut l = self.layout();
        let at = l.put(&bytes)?;
        read_reply(&self.send(IOCTL_MESSAGE, at, bytes.len(), size_of::<MessageReply>())?)
    }

    /// SET_NAME.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn set_name(&self, name: &str) -> Result<(), OpError> {
        let chars: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let length =
            u16::try_from(chars.len()).map_err(|_| OpError::Argument("name too long".into()))?;
        let mut l = self.layout();
        let buffer = l.put(&chars)?;
        let req = l.value(&SetNameRequest {
            name: WireUnicodeString {
                length,
                maximum_length: length,
                reserved: 0,
                buffer: buffer as u64,
            },
        })?;
        self.send(IOCTL_SET_NAME, req, size_of::<SetNameRequest>(), 0)
            .map(drop)
    }

    /// GET_NAME.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn get_name(&self) -> Result<String, OpError> {
        let reply = self.send(IOCTL_GET_NAME, 0, 0, GET_NAME_MAX_OUTPUT)?;
        let (header, chars) = NameReply::read_from_prefix(&reply)
            .map_err(|_| OpError::Malformed("short GET_NAME reply".into()))?;
        let units: Vec<u16> = chars
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if header.length as usize != chars.len() {
            return Err(OpError::Malformed(
                "GET_NAME length disagrees with Information".into(),
            ));
        }
        Ok(String::from_utf16_lossy(&units))
    }

    /// CONFIGURE with a struct of `version` 1, 2 or 3 (3 carries `extra` in
    /// its unknown field); returns the applied configuration.
    ///
    /// # Errors
    /// The device's status, a transport error, or a bad version.
    pub fn configure(&self, version: u8, config: Config, extra: u64) -> Result<Config, OpError> {
        let bytes = match version {
            1 => ConfigV1 {
                flags: config.flags,
                level: config.level,
            }
            .as_bytes()
            .to_vec(),
            2 => config.as_bytes().to_vec(),
            3 => ConfigV3 {
                flags: config.flags,
                level: config.level,
                quota: config.quota,
                reserved_v3: extra,
            }
            .as_bytes()
            .to_vec(),
            other => {
                return Err(OpError::Argument(format!(
                    "no CONFIGURE version {other}; use 1, 2 or 3"
                )));
            }
        };
        let mut l = self.layout();
        let at = l.put(&bytes)?;
        read_reply(&self.send(IOCTL_CONFIGURE, at, bytes.len(), size_of::<Config>())?)
    }

    /// BATCH over `segments`.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn batch(&self, segments: &[Vec<u8>]) -> Result<BatchReply, OpError> {
        let count = u32::try_from(segments.len())
            .map_err(|_| OpError::Argument("too many segments".into()))?;
        let mut l = self.layout();
        let mut table = Vec::with_capacity(segments.len());
        for bytes in segments {
            table.push(Segment {
                addr: l.put(bytes)? as u64,
                len: bytes.len() as u64,
            });
        }
        let at = l.put(table.as_bytes())?;
        let req = l.value(&BatchRequest {
            count,
            reserved: 0,
            segments: at as u64,
        })?;
        read_reply(&self.send(
            IOCTL_BATCH,
            req,
            size_of::<BatchRequest>(),
            size_of::<BatchReply>(),
        )?)
    }

    /// STATS.
    ///
    /// # Errors
    /// The device's status, or a transport error.
    pub fn stats(&self) -> Result<Stats, OpError> {
        read_reply(&self.send(IOCTL_STATS, 0, 0, size_of::<Stats>())?)
    }
}
