//! Where uploaded files live: a folder on local disk (the default) or any
//! S3-compatible store (AWS S3, MinIO, Ceph…), behind `object_store` so the
//! API (which writes) and the workers (which read) share one interface.
//!
//! Objects are keyed `files/{tenant}/{file}`: a worker can find a job's file
//! from the job alone, and one tenant's key can never name another's object.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::env::env_or;
use crate::spool::{Spool, SpoolWriter};

/// Bytes of a spooled upload held in memory at once while it is stored: one
/// part of a multipart upload (S3's smallest) and the next one filling.
const UPLOAD_PART_BYTES: usize = 5 * 1024 * 1024;
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("file {0} is not in storage")]
    NotFound(Uuid),
    #[error("file {0} is larger than its record says")]
    TooLarge(Uuid),
    #[error("file storage: {0}")]
    Backend(String),
    #[error("file storage configuration: {0}")]
    Config(String),
}

/// The configured store, cheap to clone.
#[derive(Clone)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    /// Said in logs and `/readyz`, e.g. `local:/var/lib/peyk/files` or `s3:bucket`.
    pub description: String,
}

impl FileStore {
    /// From the environment: `PEYK_STORAGE` = `local` (folder
    /// `PEYK_STORAGE_DIR`) or `s3` (bucket `PEYK_S3_BUCKET`; endpoint, region
    /// and credentials from `PEYK_S3_ENDPOINT`, `PEYK_S3_REGION` and the usual
    /// `AWS_*` variables).
    pub fn from_env() -> Result<Self, StorageError> {
        match env_or("PEYK_STORAGE", "local").as_str() {
            "local" => Self::local(env_or("PEYK_STORAGE_DIR", "./data/files").into()),
            "s3" => {
                let bucket = env_or("PEYK_S3_BUCKET", "");
                if bucket.is_empty() {
                    return Err(StorageError::Config("PEYK_STORAGE=s3 needs PEYK_S3_BUCKET".into()));
                }
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                let endpoint = env_or("PEYK_S3_ENDPOINT", "");
                if !endpoint.is_empty() {
                    // MinIO and other self-hosted stores: path-style URLs, and
                    // plain http only when the endpoint itself says so.
                    builder = builder
                        .with_endpoint(&endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                builder = builder.with_region(env_or("PEYK_S3_REGION", "us-east-1"));
                let store = builder.build().map_err(|e| StorageError::Config(e.to_string()))?;
                Ok(Self { store: Arc::new(store), description: format!("s3:{bucket}") })
            }
            other => Err(StorageError::Config(format!("PEYK_STORAGE={other}: expected `local` or `s3`"))),
        }
    }

    pub fn local(dir: PathBuf) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&dir).map_err(|e| StorageError::Config(format!("{}: {e}", dir.display())))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| StorageError::Config(e.to_string()))?;
        Ok(Self { store: Arc::new(store), description: format!("local:{}", dir.display()) })
    }

    fn key(tenant_id: Uuid, file_id: Uuid) -> Path {
        Path::from(format!("files/{tenant_id}/{file_id}"))
    }

    /// Stores spooled bytes without copying them whole into memory: small
    /// files in one request, larger ones as a multipart upload, part by part.
    pub async fn put_spool(&self, tenant_id: Uuid, file_id: Uuid, spool: &Spool) -> Result<(), StorageError> {
        let mut writer = BufWriter::with_capacity(self.store.clone(), Self::key(tenant_id, file_id), UPLOAD_PART_BYTES)
            .with_max_concurrency(UPLOAD_PARTS_IN_FLIGHT);
        let written = async {
            for chunk in spool.chunks(UPLOAD_PART_BYTES) {
                writer.write_all(chunk).await?;
            }
            writer.shutdown().await
        }
        .await;
        if let Err(error) = written {
            // A half-done multipart upload would otherwise linger in S3.
            let _ = writer.abort().await;
            return Err(StorageError::Backend(error.to_string()));
        }
        Ok(())
    }

    /// Fetches a file into a spool, chunk by chunk, for readers that need
    /// it whole (the audio decoder) but must not hold it on the heap.
    pub async fn fetch(&self, tenant_id: Uuid, file_id: Uuid) -> Result<Spool, StorageError> {
        let result = self.store.get(&Self::key(tenant_id, file_id)).await.map_err(|e| Self::read_error(e, file_id))?;
        let mut stream = result.into_stream();
        let mut spool = SpoolWriter::new().map_err(Self::spool_error)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Self::read_error(e, file_id))?;
            spool.write(&chunk).await.map_err(Self::spool_error)?;
        }
        spool.finish().await.map_err(Self::spool_error)
    }

    fn read_error(error: object_store::Error, file_id: Uuid) -> StorageError {
        match error {
            object_store::Error::NotFound { .. } => StorageError::NotFound(file_id),
            other => StorageError::Backend(other.to_string()),
        }
    }

    fn spool_error(error: std::io::Error) -> StorageError {
        StorageError::Backend(format!("temporary file: {error}"))
    }

    /// Reads a file whole, but never more than `max_bytes` of it: a stored
    /// object larger than its record says ends the read at the limit.
    pub async fn get_at_most(&self, tenant_id: Uuid, file_id: Uuid, max_bytes: u64) -> Result<Bytes, StorageError> {
        let result = self.store.get(&Self::key(tenant_id, file_id)).await.map_err(|e| Self::read_error(e, file_id))?;
        if result.meta.size > max_bytes {
            return Err(StorageError::TooLarge(file_id));
        }
        let mut stream = result.into_stream();
        let mut bytes = bytes::BytesMut::with_capacity(max_bytes.min(1 << 20) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Self::read_error(e, file_id))?;
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(StorageError::TooLarge(file_id));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes.freeze())
    }

    /// Bytes `range` of a file (within its size), as a stream: the console's
    /// audio player asks for the part it seeks to.
    pub async fn read_range(
        &self,
        tenant_id: Uuid,
        file_id: Uuid,
        range: std::ops::Range<u64>,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let options = object_store::GetOptions { range: Some(object_store::GetRange::Bounded(range)), ..Default::default() };
        let result = self.store.get_opts(&Self::key(tenant_id, file_id), options).await.map_err(|e| Self::read_error(e, file_id))?;
        Ok(result.into_stream().map(move |chunk| chunk.map_err(|e| Self::read_error(e, file_id))).boxed())
    }

    pub async fn delete(&self, tenant_id: Uuid, file_id: Uuid) -> Result<(), StorageError> {
        match self.store.delete(&Self::key(tenant_id, file_id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::Backend(e.to_string())),
        }
    }
}
