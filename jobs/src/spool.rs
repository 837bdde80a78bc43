//! A file's bytes on local disk instead of the heap.
//!
//! Uploads are written here chunk by chunk as they arrive, and workers fetch
//! stored files here before decoding them. The bytes are then read through a
//! memory map: a 200 MiB recording costs page cache, which the kernel can
//! drop and re-read, not 200 MiB of the process's own memory. A handful of
//! large uploads at once can no longer push the API or a worker out of memory.
//!
//! The file is anonymous (`tempfile::tempfile`, in `TMPDIR`): it has no name
//! another process could open, and the kernel deletes it when the last handle
//! closes, also when the process is killed.

use std::fs::File;
use std::io;
use std::ops::Deref;

use memmap2::Mmap;
use tokio::io::AsyncWriteExt;

/// Collects bytes into a temporary file.
pub struct SpoolWriter {
    file: tokio::fs::File,
    len: u64,
}

impl SpoolWriter {
    pub fn new() -> io::Result<Self> {
        Ok(Self { file: tokio::fs::File::from_std(tempfile::tempfile()?), len: 0 })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk).await?;
        self.len += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finishes writing and maps the file for reading.
    pub async fn finish(mut self) -> io::Result<Spool> {
        self.file.flush().await?;
        let file = self.file.into_std().await;
        Spool::map(file)
    }
}

/// Spooled bytes, readable as one slice.
pub struct Spool {
    /// `None` for an empty file, which cannot be mapped.
    map: Option<Mmap>,
    _file: File,
}

impl Spool {
    fn map(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        // SAFETY: the file is anonymous and only this value holds it, so
        // nothing can truncate or change it while the map is alive.
        let map = if len == 0 { None } else { Some(unsafe { Mmap::map(&file)? }) };
        Ok(Self { map, _file: file })
    }

    /// Spools bytes already in memory (tests, small payloads).
    pub async fn from_bytes(bytes: &[u8]) -> io::Result<Self> {
        let mut writer = SpoolWriter::new()?;
        writer.write(bytes).await?;
        writer.finish().await
    }
}

impl Deref for Spool {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl AsRef<[u8]> for Spool {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_come_back_as_one_slice() {
        let mut writer = SpoolWriter::new().unwrap();
        writer.write(b"hello, ").await.unwrap();
        writer.write(&[b'x'; 100_000]).await.unwrap();
        assert_eq!(writer.len(), 100_007);
        let spool = writer.finish().await.unwrap();
        assert_eq!(spool.len(), 100_007);
        assert_eq!(&spool[..7], b"hello, ");
        assert!(spool[7..].iter().all(|b| *b == b'x'));
    }

    #[tokio::test]
    async fn an_empty_spool_is_an_empty_slice() {
        let spool = SpoolWriter::new().unwrap().finish().await.unwrap();
        assert!(spool.is_empty());
    }
}
