//! Node names that are not UTF-8: decoded to private-use characters and
//! written back as the same bytes, as ClusterShell's surrogate escapes do.

use std::io::Write;

/// First code point of the range that carries bytes that are not UTF-8
/// (like Python's `surrogateescape`: `U+10FF80`..`U+10FFFF` for bytes
/// 0x80..0xFF, in Unicode's last private-use plane).
const RAW_BASE: u32 = 0x10_FF00;

/// Decodes `bytes` as UTF-8, each byte of an invalid sequence kept as a
/// private-use character that [`RawBytes`] writes back as that byte: node
/// names that are not UTF-8 pass through unchanged, as in ClusterShell.
pub fn decode_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for &b in &bad[..n] {
                    out.push(char::from_u32(RAW_BASE + u32::from(b)).unwrap_or('\u{fffd}'));
                }
                rest = &bad[n..];
            }
        }
    }
}

/// Standard output that writes the characters of [`decode_bytes`] back as
/// the raw bytes they stand for.
pub struct RawBytes<W: Write>(pub W);

impl<W: Write> Write for RawBytes<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // U+10FF80..U+10FFFF is F4 8F BE/BF xx in UTF-8.
        if !buf.windows(2).any(|w| w == [0xF4, 0x8F]) {
            return self.0.write_all(buf);
        }
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while i < buf.len() {
            if buf[i] == 0xF4
                && i + 3 < buf.len()
                && buf[i + 1] == 0x8F
                && buf[i + 2] & 0xFE == 0xBE
            {
                out.push(((buf[i + 2] & 0x03) << 6) | (buf[i + 3] & 0x3F));
                i += 4;
            } else {
                out.push(buf[i]);
                i += 1;
            }
        }
        self.0.write_all(&out)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
