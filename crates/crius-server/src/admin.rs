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

#[cfg(test)]
mod tests {
    use super::api::images_server::Images;
    use super::*;
    use crius_core::ports::fake_container::ContainerFakes;

    fn service() -> AdminImages {
        AdminImages::new(Arc::new(ImageService::new(Arc::new(ContainerFakes::default()))))
    }

    async fn import(path: &str) -> Status {
        service().import(Request::new(api::ImportRequest { path: path.into() })).await.unwrap_err()
    }

    #[tokio::test]
    async fn bad_paths_are_invalid_arguments_that_say_why() {
        let s = import("").await;
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("path is empty"), "{}", s.message());
        let s = import("image.tar").await;
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("absolute"), "{}", s.message());
        let s = import("/nonexistent/crius-admin-test.tar").await;
        assert_eq!(s.code(), tonic::Code::NotFound, "{}", s.message());
    }
}
