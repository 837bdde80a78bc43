//! Where uploaded files live: a folder on local disk (the default) or any
//! S3-compatible store (AWS S3, MinIO, Ceph…), behind `object_store` so the
//! API (which writes) and the workers (which read) share one interface.
//!
//! Objects are keyed `files/{tenant}/{file}`: a worker can find a job's file
//! from the job alone, and one tenant's key can never name another's object.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use uuid::Uuid;

use crate::env::env_or;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("file {0} is not in storage")]
    NotFound(Uuid),
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

    pub async fn put(&self, tenant_id: Uuid, file_id: Uuid, data: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&Self::key(tenant_id, file_id), PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Backend(e.to_string()))
    }

    pub async fn get(&self, tenant_id: Uuid, file_id: Uuid) -> Result<Bytes, StorageError> {
        let result = self.store.get(&Self::key(tenant_id, file_id)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound(file_id),
            other => StorageError::Backend(other.to_string()),
        })?;
        result.bytes().await.map_err(|e| StorageError::Backend(e.to_string()))
    }

    pub async fn delete(&self, tenant_id: Uuid, file_id: Uuid) -> Result<(), StorageError> {
        match self.store.delete(&Self::key(tenant_id, file_id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StorageError::Backend(e.to_string())),
        }
    }
}
