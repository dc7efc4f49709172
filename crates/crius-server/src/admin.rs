//! crius's admin API (proto/crius/admin/v1/admin.proto): node operations CRI has no call for,
//! served on the CRI socket so they share its permissions. Today: image import.

use std::path::PathBuf;
use std::sync::Arc;

use crius_core::image::{ImageRecord, ImageService};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::runtime::blocking;

/// The generated messages, server and client.
pub mod api {
    tonic::include_proto!("crius.admin.v1");
}

pub struct AdminImages {
    images: Arc<ImageService>,
}

impl AdminImages {
    pub fn new(images: Arc<ImageService>) -> Self {
        AdminImages { images }
    }
}

#[tonic::async_trait]
impl api::images_server::Images for AdminImages {
    async fn import(&self, request: Request<api::ImportRequest>) -> Result<Response<api::ImportResponse>, Status> {
        let path = request.into_inner().path;
        if path.is_empty() {
            return Err(Status::invalid_argument("Import: path is empty: give the archive's absolute path"));
        }
        let span = tracing::info_span!("Import", archive = %path);
        let images = self.images.clone();
        let imported = blocking(move || images.import(&PathBuf::from(path))).instrument(span).await?;
        Ok(Response::new(api::ImportResponse { images: imported.iter().map(imported_image).collect() }))
    }
}

fn imported_image(r: &ImageRecord) -> api::ImportedImage {
    api::ImportedImage {
        id: r.id.to_string(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        size: r.size,
    }
}
