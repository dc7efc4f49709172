//! The CRI ImageService: each call converts its request, runs one domain call on a blocking
//! thread (a pull completes even when the kubelet gives up, so its retry finds the image), and
//! maps the result.

use std::sync::Arc;

use crius_core::image::ImageService;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService as CriImageApi;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::convert::image as conv;
use crate::runtime::blocking;
use crate::status::to_status;

pub struct CriImageService {
    images: Arc<ImageService>,
}

impl CriImageService {
    pub fn new(images: Arc<ImageService>) -> Self {
        CriImageService { images }
    }
}

#[tonic::async_trait]
impl CriImageApi for CriImageService {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let filter = request.into_inner().filter.and_then(|f| f.image).map(|s| s.image).filter(|s| !s.is_empty());
        let images = self.images.clone();
        let list = blocking(move || images.list(filter.as_deref())).await?;
        Ok(Response::new(cri::ListImagesResponse { images: list.iter().map(conv::image).collect() }))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let req = request.into_inner();
        let name = conv::image_name(req.image.as_ref(), "ImageStatus").map_err(to_status)?;
        let span = tracing::info_span!("ImageStatus", image = %name);
        let images = self.images.clone();
        let verbose = req.verbose;
        let (view, info) = blocking(move || {
            let Some(view) = images.status(&name)? else { return Ok((None, None)) };
            let info = if verbose { Some(images.verbose_info(&view)?) } else { None };
            Ok((Some(view), info))
        })
        .instrument(span)
        .await?;
        let info = info.map(|i| [("info".to_string(), i)].into_iter().collect()).unwrap_or_default();
        Ok(Response::new(cri::ImageStatusResponse { image: view.as_ref().map(conv::from_view), info }))
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let req = request.into_inner();
        let name = conv::image_name(req.image.as_ref(), "PullImage").map_err(to_status)?;
        let auth = conv::auth(req.auth.as_ref());
        let span = tracing::info_span!("PullImage", image = %name);
        let images = self.images.clone();
        let record = blocking(move || images.pull(&name, &auth)).instrument(span).await?;
        Ok(Response::new(cri::PullImageResponse { image_ref: record.id.to_string() }))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let name = conv::image_name(request.into_inner().image.as_ref(), "RemoveImage").map_err(to_status)?;
        let span = tracing::info_span!("RemoveImage", image = %name);
        let images = self.images.clone();
        blocking(move || images.remove(&name)).instrument(span).await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let images = self.images.clone();
        let usage = blocking(move || images.fs_info()).await?;
        Ok(Response::new(conv::fs_info(&usage)))
    }
}
