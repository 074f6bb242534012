//! Sniffing and undoing layer compression.

use std::io::{self, Cursor, Read};

/// Errors from [`decompress`].
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// A known compression format that is not supported.
    #[error("unsupported compression format {0}: use gzip, zstd or an uncompressed tar")]
    Unsupported(&'static str),
    /// Reading the magic bytes failed.
    #[error("read archive header: {0}")]
    Io(#[from] io::Error),
}

/// The compression of a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar (or anything unrecognised: the tar parser reports the error).
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// xz (`fd 37 7a 58 5a 00`), as docker reads it for `import`, `load` and `ADD`.
    Xz,
    /// bzip2 (`BZh`), likewise.
    Bzip2,
}

const MAGIC_LEN: usize = 6;

/// Detects the compression from the first bytes of a stream.
pub fn detect_compression(head: &[u8]) -> Result<Compression, CompressionError> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Ok(Compression::Xz)
    } else if head.starts_with(b"BZh") {
        Ok(Compression::Bzip2)
    } else {
        Ok(Compression::None)
    }
}

/// The most memory an xz stream may ask for (its dictionary): xz's own presets stay under
/// 100 MiB; a hostile stream could ask for gigabytes.
const XZ_MEMLIMIT: u64 = 256 << 20;

/// An xz decoder of concatenated streams, within [`XZ_MEMLIMIT`].
pub fn xz_decoder<R: Read>(r: R) -> io::Result<liblzma::read::XzDecoder<R>> {
    let stream =
        liblzma::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, liblzma::stream::CONCATENATED)
            .map_err(io::Error::other)?;
    Ok(liblzma::read::XzDecoder::new_stream(r, stream))
}

/// Sniffs gzip / zstd / xz / bzip2 / plain tar and returns a reader of the uncompressed
/// stream.
pub fn decompress<'a, R: Read + Send + 'a>(
    mut reader: R,
) -> Result<Box<dyn Read + Send + 'a>, CompressionError> {
    let mut head = [0u8; MAGIC_LEN];
    let mut n = 0;
    while n < MAGIC_LEN {
        match reader.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let head = head[..n].to_vec();
    let compression = detect_compression(&head)?;
    let stream = Cursor::new(head).chain(reader);
    Ok(match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(stream)?),
        Compression::Xz => Box::new(xz_decoder(stream)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(data: &[u8], encoded: Vec<u8>) {
        let mut out = Vec::new();
        decompress(&encoded[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn sniffs_formats() {
        let data = b"some tar bytes, not really a tar but fine".repeat(50);
        roundtrip(&data, data.clone());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(&data, gz.finish().unwrap());
        roundtrip(&data, zstd::encode_all(&data[..], 1).unwrap());
        roundtrip(b"", Vec::new());
        roundtrip(b"abc", b"abc".to_vec());
    }

    #[test]
    fn reads_xz_and_bzip2_as_docker_does() {
        let data = b"a tar's bytes, more or less".repeat(100);
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&data).unwrap();
        roundtrip(&data, xz.finish().unwrap());
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&data).unwrap();
        roundtrip(&data, bz.finish().unwrap());
        // a stream cut short is an error, not a shorter tar
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&data).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&data).unwrap();
        for whole in [xz.finish().unwrap(), bz.finish().unwrap()] {
            let mut out = Vec::new();
            assert!(decompress(&whole[..whole.len() / 2])
                .unwrap()
                .read_to_end(&mut out)
                .is_err());
        }
    }
}
