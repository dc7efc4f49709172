//! The CRI ImageService. Pulling and the image store come with the image issue; until then each
//! call says so.

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use crate::runtime::not_yet;

pub struct CriImageService;

#[tonic::async_trait]
impl ImageService for CriImageService {
    async fn list_images(
        &self,
        _request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        not_yet("ListImages")
    }

    async fn image_status(
        &self,
        _request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        not_yet("ImageStatus")
    }

    async fn pull_image(
        &self,
        _request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        not_yet("PullImage")
    }

    async fn remove_image(
        &self,
        _request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        not_yet("RemoveImage")
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        not_yet("ImageFsInfo")
    }
}
